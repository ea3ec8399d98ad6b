# shellcheck shell=bash
# Part of the integration harness, sourced by common.sh (never on its own):
# an emulated uplink: the registry behind a shaped veth pair.

# --- an emulated uplink --------------------------------------------------------

# ep_uplink_create: a network namespace for the upstream registry, joined to
# ours by a veth pair with addresses in 198.19.0.0/16 (benchmark space), so the
# registry sits behind a link that ep_uplink_shape can make as slow as a WAN
# uplink. Call before ep_start_registry. Sets EP_UPLINK_NS, EP_UPLINK_DEV
# (our side), EP_UPLINK_ADDR (the registry's address). Removed at exit.
ep_uplink_create() {
  local id=$(($$ % 16384)) net peer
  EP_UPLINK_NS=ep-up-$$
  EP_UPLINK_DEV=epu$$h
  peer=epu$$n
  net=198.19.$((id / 64)).$((id % 64 * 4))
  EP_UPLINK_ADDR=${net%.*}.$((${net##*.} + 2))
  ip netns add "$EP_UPLINK_NS"
  ep_cleanup_push "ep__netns_delete $EP_UPLINK_NS"
  ip link add "$EP_UPLINK_DEV" type veth peer name "$peer" netns "$EP_UPLINK_NS"
  ip addr add "${net%.*}.$((${net##*.} + 1))/30" dev "$EP_UPLINK_DEV"
  ip link set "$EP_UPLINK_DEV" up
  ip netns exec "$EP_UPLINK_NS" ip addr add "$EP_UPLINK_ADDR/30" dev "$peer"
  ip netns exec "$EP_UPLINK_NS" ip link set "$peer" up
  ip netns exec "$EP_UPLINK_NS" ip link set lo up
  EP_UPLINK_PEER=$peer
  export EP_UPLINK_NS EP_UPLINK_DEV EP_UPLINK_ADDR EP_UPLINK_PEER
}

# ep_uplink_shape RATE: limit both directions of the uplink (e.g. 200mbit).
ep_uplink_shape() {
  tc qdisc replace dev "$EP_UPLINK_DEV" root tbf rate "$1" burst 256kb latency 100ms
  ip netns exec "$EP_UPLINK_NS" tc qdisc replace dev "$EP_UPLINK_PEER" root tbf rate "$1" \
    burst 256kb latency 100ms
}
