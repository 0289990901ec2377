package control

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"slices"
	"syscall"
)

// Who may use the control socket (docs/security.md, "The control socket"):
//
//   - The file system decides who may connect: the socket is 0600 and owned
//     by the daemon's user unless configured with a group (0660), whose
//     members may then connect too. Others never may.
//   - Of those who connect, the kernel's SO_PEERCRED tells the server the
//     client's uid. Root and the daemon's own user are privileged: they may
//     run every command. Anyone else who got in (a member of the group) may
//     run only the read-only commands; a command that changes state is
//     refused before it reaches the handler, and logged.
//   - An unprivileged user may hold at most maxConnsPerUser connections at
//     once, so a stuck or hostile monitoring script cannot starve the
//     daemon or lock root out.

// Options are the control socket's access settings.
type Options struct {
	// Mode is the socket file's mode: 0600 (the default when zero), or
	// 0660 to let the group's members connect. Others never get access.
	Mode fs.FileMode
	// SetGID gives the socket file group GID; without it the file keeps
	// the daemon's own group.
	SetGID bool
	GID    int
}

func (o Options) mode() fs.FileMode {
	if o.Mode == 0 {
		return 0o600
	}
	return o.Mode
}

func (o Options) check() error {
	switch m := o.mode(); {
	case m&^fs.ModePerm != 0, m&0o007 != 0:
		return fmt.Errorf("mode %04o: others may not be given access", m)
	case m&0o600 != 0o600:
		return fmt.Errorf("mode %04o: the daemon's user needs read and write access", m)
	}
	return nil
}

// readOnly are the commands that only read the daemon's state: the ones a
// member of the socket's group may run. Every other command, including
// any added later, needs a privileged client.
var readOnly = map[string]bool{CommandSAs: true, CommandStatus: true, CommandPolicy: true, CommandPeers: true,
	CommandLog: true, CommandMonitor: true, CommandListConns: true, CommandListCerts: true, CommandStats: true}

// ReadOnly reports whether command only reads the daemon's state, so that
// an unprivileged client may run it.
func ReadOnly(command string) bool { return readOnly[command] }

func readOnlyCommands() []string {
	var out []string
	for c := range readOnly {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// maxConnsPerUser bounds the connections one unprivileged user holds open
// at once.
const maxConnsPerUser = 16

// peerCred is what SO_PEERCRED tells of a client.
type peerCred struct {
	pid      int32
	uid, gid uint32
}

// clientInfo is a connected client as the server sees it.
type clientInfo struct {
	peerCred
	privileged bool
}

// unknownUID stands for a client whose credentials could not be read: it
// is unprivileged.
const unknownUID = math.MaxUint32

// identify reads the client's credentials. A client whose credentials
// cannot be read is treated as unprivileged.
func (s *Server) identify(conn *net.UnixConn) clientInfo {
	c, err := s.creds(conn)
	if err != nil {
		s.log.Warn("control connection: cannot read the client's credentials; treating it as unprivileged", "err", err)
		return clientInfo{peerCred: peerCred{pid: -1, uid: unknownUID, gid: unknownUID}}
	}
	return clientInfo{peerCred: c, privileged: c.uid == 0 || c.uid == s.ownUID}
}

// admit counts a connection of unprivileged user uid, refusing it when the
// user holds maxConnsPerUser already.
func (s *Server) admit(uid uint32) bool {
	s.usersMu.Lock()
	defer s.usersMu.Unlock()
	if s.users[uid] >= maxConnsPerUser {
		return false
	}
	s.users[uid]++
	return true
}

func (s *Server) leave(uid uint32) {
	s.usersMu.Lock()
	defer s.usersMu.Unlock()
	if s.users[uid] <= 1 {
		delete(s.users, uid)
	} else {
		s.users[uid]--
	}
}

// soPeerCred reads the credentials the kernel recorded for the client
// when it connected (unix(7), SO_PEERCRED).
func soPeerCred(conn *net.UnixConn) (peerCred, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return peerCred{}, err
	}
	var cred *syscall.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED) // #nosec G115 -- a file descriptor fits in an int
	}); err != nil {
		return peerCred{}, err
	}
	if serr != nil {
		return peerCred{}, fmt.Errorf("SO_PEERCRED: %w", serr)
	}
	if cred == nil {
		return peerCred{}, errors.New("SO_PEERCRED: no credentials")
	}
	return peerCred{pid: cred.Pid, uid: cred.Uid, gid: cred.Gid}, nil
}
