package access

import (
	"context"
	"errors"
	"fmt"

	"github.com/rswebhooks/rswebhooks/reportserver"
)

// ReportServer reads the permission model from the report server with the
// service account.
type ReportServer struct{ C *reportserver.Client }

var _ Permissions = ReportServer{}

// missing turns the server's not-found for a user into ErrOwnerMissing.
func missing(err error) error {
	if errors.Is(err, reportserver.ErrNotFound) {
		return fmt.Errorf("%w (%w)", ErrOwnerMissing, err)
	}
	return err
}

// CheckUser implements Permissions: not found or disabled is ErrOwnerMissing.
func (p ReportServer) CheckUser(ctx context.Context, userID string) error {
	u, err := p.C.User(ctx, userID)
	if err != nil {
		return missing(err)
	}
	if !u.Enabled {
		return fmt.Errorf("user %s is disabled: %w", userID, ErrOwnerMissing)
	}
	return nil
}

// IsAdmin implements Permissions.
func (p ReportServer) IsAdmin(ctx context.Context, userName string) (bool, error) {
	ok, err := p.C.IsAdmin(ctx, userName)
	return ok, missing(err)
}

// EffectivePermissions merges the user's own permissions with those of each
// of its roles. A role the server no longer knows grants nothing.
func (p ReportServer) EffectivePermissions(ctx context.Context, userID string, category int) ([]Permission, error) {
	own, err := p.C.Permissions(ctx, userID, category)
	if err != nil {
		return nil, missing(err)
	}
	roles, err := p.C.UserRoles(ctx, userID)
	if err != nil {
		return nil, missing(err)
	}
	out := convert(nil, own)
	for _, r := range roles {
		ps, err := p.C.Permissions(ctx, r.ID, category)
		switch {
		case errors.Is(err, reportserver.ErrNotFound):
			continue // deleted meanwhile: grants nothing
		case err != nil:
			return nil, err
		}
		out = convert(out, ps)
	}
	return out, nil
}

func convert(out []Permission, ps []reportserver.Permission) []Permission {
	for _, x := range ps {
		out = append(out, Permission{Access: x.Access, ResourceID: x.ResourceID, Scope: x.Scope})
	}
	return out
}

// ReportCategory implements Permissions.
func (p ReportServer) ReportCategory(ctx context.Context, reportID string) (string, error) {
	return p.C.ReportCategory(ctx, reportID)
}
