package winsvc

import (
	"fmt"
	"path/filepath"
	"strings"
)

// ServiceConfig describes a service registration.
type ServiceConfig struct {
	// Name is the service (and event-log source) name. Default DefaultName.
	Name string
	// DisplayName is shown in services.msc. Default "rswebhooks".
	DisplayName string
	// Description is shown in services.msc.
	Description string
	// Exe is the absolute path of the rswebhooks executable (required).
	Exe string
	// Args are passed to the executable when the SCM starts it, for example
	// ["serve", "--upstream", "http://127.0.0.1:83", "--listen", ":80"].
	Args []string
	// Manual makes the service start on demand instead of automatically
	// (delayed) at boot.
	Manual bool
}

// Validate fills defaults and checks the fields, naming the field and the
// rule when one is wrong.
func (s *ServiceConfig) Validate() error {
	if s.Name == "" {
		s.Name = DefaultName
	}
	if strings.ContainsAny(s.Name, `/\`) || len(s.Name) > 256 {
		return fmt.Errorf("service name %q: must not contain / or \\ and must be at most 256 characters", s.Name)
	}
	if s.DisplayName == "" {
		s.DisplayName = s.Name
	}
	if s.Description == "" {
		s.Description = "Webhooks for Telerik Report Server: a reverse proxy that turns successful API calls into signed notifications."
	}
	if s.Exe == "" {
		return fmt.Errorf("service executable: is required")
	}
	unc := strings.HasPrefix(s.Exe, `\\`)
	drive := len(s.Exe) > 2 && s.Exe[1] == ':'
	if !filepath.IsAbs(s.Exe) && !unc && !drive {
		return fmt.Errorf("service executable %q: must be an absolute path", s.Exe)
	}
	if len(s.Args) == 0 || s.Args[0] != "serve" {
		return fmt.Errorf("service arguments %q: must start with \"serve\" (give the serve flags after --)", s.Args)
	}
	return nil
}
