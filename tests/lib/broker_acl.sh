# shellcheck shell=bash
# Helpers of the broker ACL tests (test_broker_acl*.sh): contrib/mosquitto's
# gateway.conf adapted to a test dir, and a mosquitto started on it.

# gateway.conf with the test's port, password file, ACL and data dir, run
# as the current user (as root, mosquitto would switch to `mosquitto`, who
# cannot read the test's files). Writes OUT.
ep_broker_gateway_conf() { # PORT PASSWD ACL DATA_DIR OUT
  mkdir -p "$4"
  sed -e "s|^listener 1883 .*|listener $1 127.0.0.1|" \
    -e "s|^password_file .*|password_file $2|" \
    -e "s|^acl_file .*|acl_file $3|" \
    -e "s|^persistence_location .*|persistence_location $4/|" \
    "$EP_SOURCE_DIR/contrib/mosquitto/gateway.conf" >"$5"
  printf 'user %s\n' "$(id -un)" >>"$5"
}

ep_broker_start() { # CONF LOG PORT -> sets BROKER_PID, stopped at exit
  mosquitto -c "$1" -v >"$2" 2>&1 &
  BROKER_PID=$!
  EP_LOGS+=("$2")
  ep_cleanup_push "kill $BROKER_PID"
  local i
  for ((i = 0; i < 100; i++)); do
    ss -Hltn "sport = :$3" | grep -q . && return 0
    kill -0 "$BROKER_PID" 2>/dev/null || ep_die "mosquitto -c $1 exited: $(tail -n 5 "$2")"
    sleep 0.1
  done
  ep_die "mosquitto -c $1 does not listen on $3"
}
