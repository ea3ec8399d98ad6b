# shellcheck shell=bash
# Part of the integration harness, sourced by common.sh (never on its own):
# output (ep_log, ep_pass, ep_fail) and assertions (ep_assert_*).

# --- output and assertions ---------------------------------------------------

ep_log() {
  printf '%s [%s] %s\n' "$(date +%T)" "$EP_TEST_NAME" "$*" >&2
}

ep_pass() {
  EP_PASSED=$((EP_PASSED + 1))
  printf 'PASS: %s\n' "$*"
}

ep_fail() {
  EP_FAILED=$((EP_FAILED + 1))
  printf 'FAIL: %s\n' "$*"
}

# Harness errors: the test cannot go on.
ep_die() {
  printf 'FATAL: %s\n' "$*" >&2
  EP_FAILED=$((EP_FAILED + 1))
  exit 1
}

ep_assert_eq() { # EXPECTED GOT WHAT
  if [ "$1" = "$2" ]; then
    ep_pass "$3"
  else
    ep_fail "$3: expected '$1', got '$2'"
  fi
}

ep_assert_ne() { # UNEXPECTED GOT WHAT
  if [ "$1" != "$2" ]; then
    ep_pass "$3"
  else
    ep_fail "$3: did not expect '$2'"
  fi
}

ep_assert_match() { # REGEX GOT WHAT
  if [[ $2 =~ $1 ]]; then
    ep_pass "$3"
  else
    ep_fail "$3: '$2' does not match /$1/"
  fi
}

ep_assert() { # WHAT CMD... : passes when CMD succeeds
  local what=$1
  shift
  if "$@"; then
    ep_pass "$what"
  else
    ep_fail "$what (command failed: $*)"
  fi
}

ep_assert_not() { # WHAT CMD... : passes when CMD fails
  local what=$1
  shift
  if "$@"; then
    ep_fail "$what (command unexpectedly succeeded: $*)"
  else
    ep_pass "$what"
  fi
}
