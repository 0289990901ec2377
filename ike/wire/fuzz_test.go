package wire

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzParse from the round-trip messages")

// fuzzSeeds are the inputs of the checked-in seed corpus.
func fuzzSeeds() [][]byte {
	seeds := [][]byte{saInitVector, typicalSAInit().Marshal()}
	names := make([]string, 0)
	ms := testMessages()
	for n := range ms {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		seeds = append(seeds, ms[n].Marshal())
	}
	return seeds
}

// TestUpdateCorpus writes the seed corpus when run with -update-corpus.
func TestUpdateCorpus(t *testing.T) {
	if !*updateCorpus {
		t.Skip("run with -update-corpus to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range fuzzSeeds() {
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(s)))
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%02d", i)), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkReparse checks that what parsed serialises to something that parses
// to the same message.
func checkReparse(t *testing.T, m *Message) {
	b := m.Marshal() // updates m.Header.Length and NextPayload
	m2, err := Parse(b)
	if err != nil {
		t.Fatalf("re-Parse of Marshal output failed: %v\n%x", err, b)
	}
	if !reflect.DeepEqual(m, m2) {
		t.Fatalf("re-Parse differs:\n%#v\n%#v", m, m2)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if m, err := Parse(data); err == nil {
			checkReparse(t, m)
		} else if _, ok := err.(*Error); !ok {
			t.Fatalf("error of type %T", err)
		}
		if len(data) < 1 {
			return
		}
		chains := [][]byte{data[1:]}
		firsts := []PayloadType{PayloadType(data[0])}
		if len(data) >= HeaderLen {
			chains = append(chains, data[HeaderLen:])
			firsts = append(firsts, PayloadType(data[16]))
		}
		for i, c := range chains {
			ps, err := ParsePayloads(firsts[i], c)
			if err != nil {
				if _, ok := err.(*Error); !ok {
					t.Fatalf("error of type %T", err)
				}
				continue
			}
			b := AppendPayloads(nil, ps)
			first := PayloadNone
			if len(ps) > 0 {
				first = ps[0].Type()
			}
			ps2, err := ParsePayloads(first, b)
			if err != nil {
				t.Fatalf("re-ParsePayloads failed: %v", err)
			}
			if !reflect.DeepEqual(ps, ps2) {
				t.Fatalf("re-ParsePayloads differs")
			}
		}
	})
}
