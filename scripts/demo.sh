#!/usr/bin/env bash
# Demo: two iked daemons on loopback (127.0.0.1 and 127.0.0.2, unprivileged
# ports) negotiate an IKE SA and a Child SA with a pre-shared key; ikectl
# shows the result on both, then terminates it. Needs only Go.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== building iked and ikectl"
go build -o "$work/iked" ./cmd/iked
go build -o "$work/ikectl" ./cmd/ikectl

# Each daemon gets its own address on loopback; port 5500 for IKE and 5501 for NAT-T.
for side in alice bob; do
  if [ $side = alice ]; then me=127.0.0.1; peer=127.0.0.2; myid=alice.example; peerid=bob.example
  else me=127.0.0.2; peer=127.0.0.1; myid=bob.example; peerid=alice.example; fi
  cat > "$work/$side.yaml" <<CONF
listen: ["$me:5500"]
control_socket: $work/$side.sock
backend: memory   # the demo moves no packets; "auto" protects real traffic
log: {format: text, level: info}
connections:
  to-peer:
    local: $me
    remote: $peer:5500
    local_id: fqdn:$myid
    remote_id: fqdn:$peerid
    auth: {method: psk, secret: "demo pre-shared key, never use in production"}
    ike_proposals: [aes256gcm16-prfsha256-x25519]
    esp_proposals: [aes256gcm16]
    local_ts: ["10.$([ $side = alice ] && echo 1 || echo 2).0.0/24"]
    remote_ts: ["10.$([ $side = alice ] && echo 2 || echo 1).0.0/24"]
CONF
done

echo "== starting bob (responder) and alice"
"$work/iked" --config "$work/bob.yaml" 2> "$work/bob.log" & pids+=($!)
"$work/iked" --config "$work/alice.yaml" 2> "$work/alice.log" & pids+=($!)
for side in alice bob; do
  for _ in $(seq 50); do [ -S "$work/$side.sock" ] && break; sleep 0.1; done
done

echo "== ikectl initiate to-peer (on alice)"
"$work/ikectl" --socket "$work/alice.sock" initiate to-peer
echo
echo "== ikectl sas on alice"
"$work/ikectl" --socket "$work/alice.sock" sas
echo
echo "== ikectl sas on bob"
"$work/ikectl" --socket "$work/bob.sock" sas
echo
echo "== ikectl terminate to-peer (on alice)"
"$work/ikectl" --socket "$work/alice.sock" terminate to-peer
sleep 0.2
echo "== ikectl sas on bob after terminate"
"$work/ikectl" --socket "$work/bob.sock" sas
echo
echo "== alice's log"
cat "$work/alice.log"
