package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/iked/iked/ike"
)

// changeCounter is a handler that counts the calls that change state.
type changeCounter struct {
	fakeHandler
	changes atomic.Int32
}

func (c *changeCounter) Initiate(ctx context.Context, conn string, fresh bool) ([]ike.SAInfo, error) {
	c.changes.Add(1)
	return c.fakeHandler.Initiate(ctx, conn, fresh)
}

func (c *changeCounter) Terminate(ctx context.Context, target string) (int, error) {
	c.changes.Add(1)
	return c.fakeHandler.Terminate(ctx, target)
}

func (c *changeCounter) Rekey(ctx context.Context, target string, spi uint32) (string, error) {
	c.changes.Add(1)
	return c.fakeHandler.Rekey(ctx, target, spi)
}

// FuzzControlRequest feeds any bytes a client may send through the
// server's decoding and authorisation: the line reader, the JSON decoder,
// the privilege check and the dispatch. Whatever the input: no panic
// (dispatch would turn one into "internal error"), an answer that encodes,
// and an unprivileged client never reaches a handler method that changes
// state.
func FuzzControlRequest(f *testing.F) {
	for _, seed := range []string{
		`{"command":"sas"}` + "\n",
		`{"command":"status"}`,
		`{"command":"initiate","connection":"site-a"}` + "\r\n",
		`{"command":"initiate","connection":"site-a","new":true}` + "\n",
		`{"command":"terminate","target":"ike-1"}` + "\n",
		`{"command":"rekey","target":"ike-1","child":"c1a2b3c4"}` + "\n",
		`{"command":"rekey","target":"ike-1","child":"zz"}` + "\n",
		`{"command":"peers","target":"192.0.2.1","protocol":"tcp","port":22}` + "\n",
		`{"command":"peers","target":"::1","protocol":"icmp","port":1}` + "\n",
		`{"command":"policy"}` + "\n",
		`{"command":"reload"}` + "\n",
		`{"command":""}` + "\n",
		`{"command":"sas","command":"terminate","target":"x"}` + "\n",
		`{"COMMAND":"Terminate","Target":"site-a"}` + "\n",
		`{"command":"sas"}{"command":"terminate"}` + "\n",
		`{"command":"\u0073as"}` + "\n",
		`["sas"]`, `null`, `"sas"`, `{}`, `{"port":70000}`, `{"command":1}`,
		"\x00\xff\xfe\n", "", "\n", "{\"command\":\"sas\"", strings.Repeat("{", 1000),
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	f.Fuzz(func(t *testing.T, data []byte, privileged bool) {
		line, err := readLine(bytes.NewReader(data), MaxRequestSize)
		switch {
		case errors.Is(err, errTooLarge):
			if len(data) <= MaxRequestSize {
				t.Fatalf("%d bytes refused as too large", len(data))
			}
			return
		case err != nil:
			if len(data) > 0 {
				t.Fatalf("readLine: %v", err)
			}
			return
		}
		h := &changeCounter{fakeHandler: fakeHandler{sas: sampleSAs()}}
		s := &Server{h: h, log: slog.New(slog.DiscardHandler), ctx: ctx, ownUID: 990, users: map[uint32]int{}}
		resp := s.respond(line, clientInfo{peerCred: peerCred{pid: 1, uid: 4242}, privileged: privileged})
		if resp.Error == "internal error" {
			t.Fatalf("request %q panicked", line)
		}
		if _, err := json.Marshal(resp); err != nil {
			t.Fatalf("response does not encode: %v", err)
		}
		if !privileged && h.changes.Load() != 0 {
			t.Fatalf("unprivileged request %q changed state", line)
		}
		req, err := decodeRequest(line)
		if err == nil && ReadOnly(req.Command) && strings.Contains(resp.Error, "permission denied") {
			t.Fatalf("read-only request %q refused: %s", line, resp.Error)
		}
	})
}
