package vmtest

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// cpioArchive builds an initramfs: a cpio archive in the "newc" format
// the kernel unpacks (Documentation/driver-api/early-userspace/
// buffer-format.rst), uncompressed, which unpacks fastest under emulation.
type cpioArchive struct {
	entries map[string]cpioEntry
}

type cpioEntry struct {
	mode uint32 // file type and permissions
	data []byte // file contents, or a symlink's target
}

const (
	sIFDIR = 0o040000
	sIFREG = 0o100000
	sIFLNK = 0o120000
)

func newCPIO() *cpioArchive { return &cpioArchive{entries: map[string]cpioEntry{}} }

// dir adds a directory and its parents.
func (a *cpioArchive) dir(path string) {
	path = strings.Trim(path, "/")
	for i := 0; i <= len(path); i++ {
		if i == len(path) || path[i] == '/' {
			if p := path[:i]; p != "" {
				if _, ok := a.entries[p]; !ok {
					a.entries[p] = cpioEntry{mode: sIFDIR | 0o755}
				}
			}
		}
	}
}

func (a *cpioArchive) parent(path string) {
	if i := strings.LastIndexByte(path, '/'); i > 0 {
		a.dir(path[:i])
	}
}

// file adds a regular file with permissions perm.
func (a *cpioArchive) file(path string, perm uint32, data []byte) {
	path = strings.Trim(path, "/")
	a.parent(path)
	a.entries[path] = cpioEntry{mode: sIFREG | perm&0o7777, data: data}
}

// symlink adds a symbolic link to target.
func (a *cpioArchive) symlink(path, target string) {
	path = strings.Trim(path, "/")
	a.parent(path)
	a.entries[path] = cpioEntry{mode: sIFLNK | 0o777, data: []byte(target)}
}

// writeTo writes the archive, parents before children, and its trailer.
func (a *cpioArchive) writeTo(w io.Writer) error {
	names := make([]string, 0, len(a.entries))
	for n := range a.entries {
		names = append(names, n)
	}
	sort.Strings(names) // a parent sorts before its children
	ino := uint32(1)
	for _, n := range names {
		e := a.entries[n]
		nlink := uint32(1)
		if e.mode&0o170000 == sIFDIR {
			nlink = 2
		}
		if err := writeCPIOEntry(w, ino, e.mode, nlink, n, e.data); err != nil {
			return err
		}
		ino++
	}
	return writeCPIOEntry(w, 0, 0, 1, "TRAILER!!!", nil)
}

func writeCPIOEntry(w io.Writer, ino, mode, nlink uint32, name string, data []byte) error {
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize (with its NUL), check.
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	buf := make([]byte, 0, pad4(len(hdr)+len(name)+1)+pad4(len(data)))
	buf = append(buf, hdr...)
	buf = append(buf, name...)
	buf = append(buf, 0)
	buf = append(buf, make([]byte, pad4(len(buf))-len(buf))...)
	buf = append(buf, data...)
	buf = append(buf, make([]byte, pad4(len(buf))-len(buf))...)
	_, err := w.Write(buf)
	return err
}

func pad4(n int) int { return (n + 3) &^ 3 }
