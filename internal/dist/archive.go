package dist

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"io"
	"os"
	"time"
)

// entry is one file in an archive.
type entry struct {
	name string // path inside the archive, with /
	src  string
	mode os.FileMode
}

// writeTarGz writes files in the given order, each owned by root with the
// given mode and mtime, with no gzip name or time: the same inputs give the
// same bytes.
func writeTarGz(w io.Writer, files []entry, mtime time.Time) error {
	gz, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	dirs := map[string]bool{}
	for _, f := range files {
		for _, dir := range newDirs(dirs, f.name) {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: mtime,
				Uname: "root", Gname: "root", Format: tar.FormatPAX}); err != nil {
				return err
			}
		}
		b, err := os.ReadFile(f.src)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: int64(f.mode), Size: int64(len(b)),
			ModTime: mtime, Uname: "root", Gname: "root", Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// writeZip writes files in the given order with a fixed time and mode.
func writeZip(w io.Writer, files []entry, mtime time.Time) error {
	zw := zip.NewWriter(w)
	dirs := map[string]bool{}
	for _, f := range files {
		for _, dir := range newDirs(dirs, f.name) {
			h := &zip.FileHeader{Name: dir + "/", Method: zip.Store, Modified: mtime}
			h.SetMode(os.ModeDir | 0o755)
			if _, err := zw.CreateHeader(h); err != nil {
				return err
			}
		}
		b, err := os.ReadFile(f.src)
		if err != nil {
			return err
		}
		h := &zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: mtime}
		h.SetMode(f.mode)
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		if _, err := fw.Write(b); err != nil {
			return err
		}
	}
	return zw.Close()
}

// newDirs returns the directories above name not yet in seen, outermost
// first, and adds them to seen.
func newDirs(seen map[string]bool, name string) []string {
	var out []string
	for i := 0; i < len(name); i++ {
		if name[i] == '/' && !seen[name[:i]] {
			seen[name[:i]] = true
			out = append(out, name[:i])
		}
	}
	return out
}
