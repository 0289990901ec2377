package interop

import (
	"os"
	"path/filepath"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/transcript"
)

// Golden transcripts for certificate authentication: the certificate
// material travels inline in transcript.Connection (throwaway test keys),
// and with IKED_RECORD_TRANSCRIPTS=1 the recordings go beside the PSK ones,
// where ike's TestReplayTranscripts replays them without a peer.

// certTranscriptValidity keeps recorded certificates valid for a century,
// so that a stored transcript still replays (path validation uses the
// current time) long after it was recorded.
const certTranscriptValidity = 100 * 365 * 24 * time.Hour

// TestCertTranscripts records one ECDSA P-256 certificate session against
// charon per iked role (root and intermediate CA, AUTH method 14, CERT and
// CERTREQ), with iked's randomness seeded, and replays it offline at once:
// the replay must reproduce every datagram iked sent.
func TestCertTranscripts(t *testing.T) {
	requireCharon(t)
	for i, role := range []string{"responder", "initiator"} {
		t.Run(role, func(t *testing.T) {
			// The material is made before the randomness is seeded:
			// the replay does not make it again.
			m, a := newCertMaterial(t, certSetup{ikedKey: "p256", charonKey: "p256", validity: certTranscriptValidity})
			ca := transcript.Connection{
				Auth: "cert", Cert: string(m.ikedFiles[a.Cert]), Key: string(m.ikedFiles[a.Key]),
				CA: []string{string(m.ikedFiles["root.pem"])}, Intermediates: []string{string(m.ikedFiles["inter.pem"])},
			}
			var tr *transcript.Transcript
			t.Run("record", func(t *testing.T) { tr = recordCertSession(t, role, uint64(i+101), m, ca) })
			if tr == nil || t.Failed() {
				return
			}
			t.Run("replay", func(t *testing.T) {
				replayWith(t, tr, func() (*ike.Connection, error) { return engineConnection(t, tr.Connection) })
			})
			if os.Getenv("IKED_RECORD_TRANSCRIPTS") != "" && !t.Failed() {
				path := filepath.Join(transcriptDir, "charon-cert-"+role+".json")
				if err := tr.Save(path); err != nil {
					t.Fatal(err)
				}
				t.Logf("wrote %s", path)
			}
		})
	}
}

// recordCertSession is recordSession with certificates: charon gets its
// certificate, key, the intermediate and the root in its swanctl
// directories; iked's connection uses the cert method built from ca.
func recordCertSession(t *testing.T, role string, seed uint64, m *certMaterial, ca transcript.Connection) *transcript.Transcript {
	cryptotest.SetGlobalRandom(t, seed)
	topo := newTopology(t)
	iAddr, cAddr := topo.IkedAddr.String(), topo.CharonAddr.String()
	tr := &transcript.Transcript{
		Description: "certificate (ECDSA P-256, root and intermediate CA) session with charon, iked " + role +
			"; recorded by interop TestCertTranscripts",
		Peer: "strongSwan 5.9.8 (Debian 12, kernel-libipsec)", Role: role, Seed: seed, CookieThreshold: -1,
		Connection: transcript.Connection{
			Local: iAddr, Remote: cAddr + ":500", LocalID: ikedID, RemoteID: charonID,
			IKEProposals: []string{"aes256gcm16-prfsha256-x25519"}, ESPProposals: []string{"aes256gcm16"},
			LocalTS: []string{ikedInnerNet}, RemoteTS: []string{charonInnerNet}, Mode: "tunnel",
			Auth: ca.Auth, Cert: ca.Cert, Key: ca.Key, CA: ca.CA, Intermediates: ca.Intermediates,
		},
	}
	cc := charonConn{
		Name: connName, Child: childName, LocalAddr: cAddr, RemoteAddr: iAddr, LocalID: charonID, RemoteID: ikedID,
		IKEProposals: []string{"aes256gcm16-prfsha256-x25519"}, ESPProposals: []string{"aes256gcm16"},
		LocalTS: []string{charonInnerNet}, RemoteTS: []string{ikedInnerNet},
	}
	certCharonConn(&cc)
	c := startCharon(t, topo.S, charonOptions{Conns: []charonConn{cc}, Files: m.charonFiles})
	conn, err := engineConnection(t, tr.Connection)
	if err != nil {
		t.Fatal(err)
	}
	return recordWith(t, topo, c, tr, conn)
}
