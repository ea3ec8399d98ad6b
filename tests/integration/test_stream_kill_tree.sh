#!/usr/bin/env bash
# test_stream_kill.sh on a tree:2 locality: the victim is a node with two
# children, killed at half of the large layer in pull and in deploy mode.
# Same assertions, default flags, stores on a real disk.
STREAM_KILL_NAME=test_stream_kill_tree STREAM_KILL_TOPOLOGY=tree:2 \
  STREAM_KILL_POINTS=${STREAM_KILL_POINTS:-50} \
  exec bash "$(dirname "$0")/test_stream_kill.sh" "$@"
