/* Internals of `edgepullctl deploy` (ctl_deploy.c: options, configuration,
 * MQTT; ctl_deploy_view.c: what each node reported, the live display and
 * the final report). */
#ifndef EP_CTL_CTL_DEPLOY_H
#define EP_CTL_CTL_DEPLOY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "locality/proto.h"

#define CTL_DEPLOY_NODES_MAX 4096

struct ctl_dnode {
  char id[PROTO_ID_MAX + 1];
  bool online;   /* from its retained state */
  bool expected; /* online when the deploy was sent, or reported since */
  bool have;     /* p holds a progress message */
  bool final;    /* done or failed */
  struct proto_progress p;
};

struct ctl_dview {
  char id[PROTO_ID_MAX + 1];
  const char *image;
  bool tty; /* live display; else JSON lines */
  FILE *out;
  struct ctl_dnode *nodes;
  size_t n;
  int drawn; /* lines of the last live display */
  int64_t start_ms, last_draw_ms;
  char reason[320]; /* why the wait ended early (nobody answered), or "" */
};

/* Finds (or with create, adds) a node; NULL when the table is full. */
struct ctl_dnode *ctl_dview_node(struct ctl_dview *v, const char *id, bool create);
/* A state message (online or not) of node id. */
void ctl_dview_state(struct ctl_dview *v, const char *id, bool online);
/* Marks the online nodes as expected: the deploy is being sent now. */
void ctl_dview_expect(struct ctl_dview *v, int64_t now_ms);
/* A valid progress message: recorded, printed as a JSON line or redrawn. */
void ctl_dview_progress(struct ctl_dview *v, const struct proto_progress *p, int64_t now_ms);
/* Redraws the live display when due. */
void ctl_dview_tick(struct ctl_dview *v, int64_t now_ms);
/* Every expected node reported done or failed (and there is at least one). */
bool ctl_dview_complete(const struct ctl_dview *v);
/* Some node sent a progress message for this deploy. */
bool ctl_dview_answered(const struct ctl_dview *v);
/* The nodes expected to report (online when it was sent, or reported since). */
size_t ctl_dview_expected(const struct ctl_dview *v);
/* Prints the final report; returns the exit code (0 all done, 1 otherwise). */
int ctl_dview_report(struct ctl_dview *v, int64_t now_ms, bool timed_out);
void ctl_dview_free(struct ctl_dview *v);

#endif
