package wire

import "testing"

// typicalSAInit is an IKE_SA_INIT request as a daemon sends it.
func typicalSAInit() *Message {
	return &Message{
		Header: hdr(IKE_SA_INIT, FlagInitiator, 0),
		Payloads: []Payload{
			&SA{Proposals: []Proposal{{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
				{Type: TransformENCR, ID: 20, KeyLength: 256},
				{Type: TransformPRF, ID: 7},
				{Type: TransformDH, ID: 31},
				{Type: TransformDH, ID: 19},
			}}}},
			&KE{Group: 31, Data: seq(32, 1)},
			&Nonce{Data: seq(32, 0x40)},
			&Notify{Code: NotifyNATDetectionSourceIP, Data: seq(20, 0x60)},
			&Notify{Code: NotifyNATDetectionDestinationIP, Data: seq(20, 0x80)},
		},
	}
}

func BenchmarkParse(b *testing.B) {
	buf := typicalSAInit().Marshal()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	m := typicalSAInit()
	b.SetBytes(int64(len(m.Marshal())))
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Marshal()
	}
}
