package interop

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/iked/iked/ike/transcript"
	"testing/cryptotest"
)

// TestTranscriptsHybrid records a hybrid post-quantum session against
// strongSwan 6.0.6 per iked role (X25519, then ML-KEM-768 in one
// IKE_INTERMEDIATE, fragmented; IntAuth in AUTH) and replays it offline at
// once, as TestTranscripts does for 5.9.8: the replay must reproduce every
// datagram iked sent. With IKED_RECORD_TRANSCRIPTS=1 it stores them as
// ../ike/testdata/transcripts/charon6-hybrid-ROLE.json, which ike's
// TestReplayTranscripts replays without a peer.
func TestTranscriptsHybrid(t *testing.T) {
	b := requireCharon6(t)
	const prop = "aes256gcm16-prfsha384-x25519-ke1_mlkem768"
	for i, role := range []string{"responder", "initiator"} {
		t.Run(role, func(t *testing.T) {
			var tr *transcript.Transcript
			t.Run("record", func(t *testing.T) {
				seed := uint64(21 + i)
				cryptotest.SetGlobalRandom(t, seed)
				topo := newTopology(t)
				iAddr, cAddr := topo.IkedAddr.String(), topo.CharonAddr.String()
				rec := &transcript.Transcript{
					Description: "hybrid PSK session with charon 6, X25519 + ML-KEM-768 in IKE_INTERMEDIATE, iked " + role + "; recorded by interop TestTranscriptsHybrid",
					Peer:        "strongSwan 6.0.6 (shared/vendor, kernel-libipsec)", Role: role, Seed: seed, CookieThreshold: -1,
					Connection: transcript.Connection{
						Local: iAddr, Remote: cAddr + ":500", LocalID: ikedID, RemoteID: charonID, PSK: interopPSK,
						IKEProposals: []string{prop}, ESPProposals: []string{"aes256gcm16"},
						LocalTS: []string{ikedInnerNet}, RemoteTS: []string{charonInnerNet}, Mode: "tunnel",
					},
				}
				c := startCharon(t, topo.S, charonOptions{Build: b, Conns: []charonConn{{
					Name: connName, Child: childName, LocalAddr: cAddr, RemoteAddr: iAddr, LocalID: charonID, RemoteID: ikedID, PSK: interopPSK,
					IKEProposals: []string{prop}, ESPProposals: []string{"aes256gcm16"},
					LocalTS: []string{charonInnerNet}, RemoteTS: []string{ikedInnerNet},
				}}})
				conn, err := engineConnection(t, rec.Connection)
				if err != nil {
					t.Fatal(err)
				}
				tr = recordWith(t, topo, c, rec, conn)
				inter := 0
				for _, m := range tr.Messages {
					if d := m.Data; len(d) > 18 && d[18] == 43 || len(d) > 22 && d[0]|d[1]|d[2]|d[3] == 0 && d[22] == 43 {
						inter++
					}
				}
				if inter < 2 {
					t.Fatalf("the recording has %d IKE_INTERMEDIATE datagrams", inter)
				}
				t.Logf("recorded %d datagrams, %d of them IKE_INTERMEDIATE", len(tr.Messages), inter)
			})
			if tr == nil || t.Failed() {
				return
			}
			t.Run("replay", func(t *testing.T) { replaySession(t, tr) })
			if os.Getenv("IKED_RECORD_TRANSCRIPTS") != "" && !t.Failed() {
				path := filepath.Join(transcriptDir, "charon6-hybrid-"+role+".json")
				if err := tr.Save(path); err != nil {
					t.Fatal(err)
				}
				t.Logf("wrote %s", path)
			}
		})
	}
}
