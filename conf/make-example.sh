#!/bin/sh
# Regenerates the example three-node set in this directory: node{1,2,3}.key (new keys) and
# node{1,2,3}.toml (each listing the other two as peers, with adverts made by `netmachine advert`).
#
# Usage: conf/make-example.sh            (builds the binary with cargo if needed)
#        NETMACHINE=/path/to/netmachine conf/make-example.sh
#
# The keys are EXAMPLE keys, published with the source: never use them for a real node.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${NETMACHINE:-}" ]; then
    cargo build --quiet --manifest-path "$here/../Cargo.toml" --bin netmachine
    target=$(cargo metadata --format-version 1 --no-deps --manifest-path "$here/../Cargo.toml" |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    NETMACHINE="$target/debug/netmachine"
fi

header() {
    cat <<END
# Example configuration of node$1 of a three-node set on 127.0.0.1 (see conf/README.md).
# node$1.key is an EXAMPLE key published with the source: never use it for a real node.
# Regenerate the whole set with conf/make-example.sh.

key_file = "node$1.key"
listen = ["127.0.0.1:700$1"]
name = "node$1"
END
}

# Keys, then configurations without peers, from which the adverts are printed.
for i in 1 2 3; do
    rm -f "$here/node$i.key"
    "$NETMACHINE" keygen --out "$here/node$i.key" >/dev/null
    header "$i" >"$here/node$i.toml"
done
for i in 1 2 3; do
    eval "advert$i=\$(\"\$NETMACHINE\" advert --config \"\$here/node\$i.toml\")"
done

# An example domain introduced by node1, whose members authenticate with a pre-shared key
# (inline below: a PSK file would need mode 0600, which a checkout does not keep).
rm -f "$here/domain.key"
"$NETMACHINE" domain keygen --out "$here/domain.key" >/dev/null
node1=$(printf '%s' "$advert1" | cut -c11-74)
domain=$("$NETMACHINE" domain advert --key "$here/domain.key" --introducer "$node1@127.0.0.1:7001" \
    --auth psk 2>/dev/null)

# An engine of node3 that node1 knows where to find without asking (its PubSub engine; any
# engine node3 runs, reachable or not, can be listed so).
engine3=$("$NETMACHINE" advert --config "$here/node3.toml" --engine pubsub 2>/dev/null)

# The full configurations: every node lists the other two.
for i in 1 2 3; do
    {
        header "$i"
        for j in 1 2 3; do
            [ "$i" = "$j" ] && continue
            eval "line=\$advert$j"
            printf '\n[[peers]]  # node%s\nadvert = "%s"\n' "$j" "$line"
            echo 'trust = 128  # 0 bans the peer; 255 is full trust'
        done
        if [ "$i" = 1 ]; then
            printf '\n[[engines]]  # the pubsub engine of node3\nadvert = "%s"\n' "$engine3"
        fi
        cat <<END

[[domains]]  # the example domain (conf/domain.key; netmachine domain members --domain ...)
advert = "$domain"
psk = "an EXAMPLE pre-shared key: never use it"

[limits]
# A peer whose messages fail verification this many times is cut off: disconnected with close
# code 0x8, neither dialled nor accepted for misbehaving_peer_backoff_s seconds.
bad_messages_before_disconnect = 16
misbehaving_peer_backoff_s = 300

[interdomain]
# The inter-domain engines (PeerSampling, Clustering, DomainRouting; docs/operations.md,
# "Between domains"), at their defaults. enabled = false opts out: the node then neither gossips
# nor forwards other nodes' domain requests. blip_bits and blip_hashes must match network-wide.
enabled = true
mode = "taps"
blip_bits = 1024
blip_hashes = 3
blip_epsilon = 5.0
forward = true

[relay]
# Forward relay messages for any peer (docs/operations.md, "Relaying"): nodes with no direct path
# to each other reach each other through this one. The default is "never".
forward = "anyone"
END
    } >"$here/node$i.toml"
    "$NETMACHINE" advert --config "$here/node$i.toml" >/dev/null
done
echo "wrote $here/node{1,2,3}.key, $here/domain.key and $here/node{1,2,3}.toml"
