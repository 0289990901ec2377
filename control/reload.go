package control

import "context"

// CommandReload re-reads the daemon's configuration file and answers with
// what changed (Response.Reload), or with the configuration's errors
// (Response.Error, one "file:line: message" per line) while the running
// configuration stays.
const CommandReload = "reload"

// Reloader is implemented by a Handler that can reload its configuration;
// "reload" is refused by a Handler that does not.
type Reloader interface {
	// Reload applies the configuration file again and says what changed.
	// On error the running configuration stays as it was.
	Reload(ctx context.Context) (*ReloadResult, error)
}

// ReloadResult says what a reload changed.
type ReloadResult struct {
	// ConfigFile is the file read.
	ConfigFile string `json:"config_file"`
	// Added, Changed, Removed and Unchanged name the configured
	// connections by what the reload did to them. A connection is
	// changed when any key its SAs were negotiated with changed; one
	// whose start_action or updown keys alone changed is in Updated.
	Added     []string `json:"added"`
	Changed   []string `json:"changed"`
	Updated   []string `json:"updated"`
	Removed   []string `json:"removed"`
	Unchanged []string `json:"unchanged"`
	// Kept are the IKE SAs that stay, Terminated those deleted, each with
	// why.
	Kept       []ReloadSA `json:"kept"`
	Terminated []ReloadSA `json:"terminated"`
	// Applied lists the daemon settings that changed and took effect,
	// e.g. "log.level: info -> debug".
	Applied []string `json:"applied"`
	// RestartNeeded lists settings that changed but take effect only when
	// the daemon restarts, e.g. "listen: 0.0.0.0:500 -> 0.0.0.0:1500"; the
	// running daemon keeps the old values.
	RestartNeeded []string `json:"restart_needed"`
}

// ReloadSA is one IKE SA in a reload's answer.
type ReloadSA struct {
	// ID is the SA's ID ("ike-3"), Connection its connection.
	ID         string `json:"id"`
	Connection string `json:"connection"`
	// Reason says why it was kept or terminated.
	Reason string `json:"reason"`
}

// reload answers CommandReload.
func (s *Server) reload(ctx context.Context) Response {
	r, ok := s.h.(Reloader)
	if !ok {
		return Response{Error: "this daemon cannot reload its configuration"}
	}
	res, err := r.Reload(ctx)
	if err != nil {
		return Response{Error: err.Error()}
	}
	return Response{Reload: res}
}
