# bash completion for edgepulld, edgepullctl and edgepull-coordinator.
# Installed once per command under /usr/share/bash-completion/completions/;
# the option lists come from the programs' --help at completion time, so they
# never drift from the binaries.
# shellcheck shell=bash

# Options of "$@" --help: every word starting with -- (and -x short ones).
_edgepull_opts() {
  "$@" --help 2>/dev/null | grep -oE -- '(^|[ ,])--?[a-z][a-z0-9-]*|--\[no-\][a-z-]+' |
    sed -E 's/^[ ,]//; s/^--\[no-\](.*)/--\1 --no-\1/'
}

# Completes the argument of option $1; returns 1 when $1 takes none.
_edgepull_optarg() {
  case "$1" in
  --config | --*-file | --state-dir | -d | --snapshotter-root | --containerd-address | \
    --docker-socket | --peer-ca | --peer-cert | --peer-key | --dir | --out)
    _filedir
    ;;
  --import) mapfile -t COMPREPLY < <(compgen -W 'none containerd docker' -- "$cur") ;;
  --topology) mapfile -t COMPREPLY < <(compgen -W 'chain tree:2 tree:3 tree:4' -- "$cur") ;;
  --listen | --peer-listen | --metrics-listen | --broker | --locality | --node-id | --gateway-id | --*-username | --username | \
    --name | --days | \
    --advertise-addr | --link-mbps | --keepalive | --heartbeat | --*-timeout | --timeout | \
    --default-registry | --registry | --tag-ttl | --max-connections | --platform | --client-id | \
    --*-max-rate) ;;
  *) return 1 ;;
  esac
  return 0
}

_edgepull() {
  local cur prev words cword
  _init_completion || return
  _edgepull_optarg "$prev" && return
  local cmd=${words[0]} sub="" i
  if [ "${cmd##*/}" = edgepullctl ]; then
    for ((i = 1; i < cword; i++)); do
      case "${words[i]}" in
      -d | --state-dir | --snapshotter-root) ((i++)) ;;
      -*) ;;
      *) sub=${words[i]} && break ;;
      esac
    done
    if [ -z "$sub" ] && [[ $cur != -* ]]; then
      mapfile -t COMPREPLY < <(compgen -W 'layers images stat schema nodes where topology snapshots du gc pin unpin deploy setup ca' -- "$cur")
      return
    fi
    if [ "$sub" = ca ] && [ "${words[cword - 1]}" = ca ] && [[ $cur != -* ]]; then
      mapfile -t COMPREPLY < <(compgen -W 'init issue' -- "$cur")
      return
    fi
  fi
  if [[ $cur == -* ]]; then
    local opts
    if [ "$sub" = deploy ] || [ "$sub" = ca ]; then
      opts=$(_edgepull_opts "$cmd" "$sub")
    else
      opts=$(_edgepull_opts "$cmd")
    fi
    mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
  fi
}
complete -F _edgepull edgepulld edgepullctl edgepull-coordinator
