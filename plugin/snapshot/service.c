/* The gRPC face of the snapshotter: one handler per method of containerd's Snapshots service,
 * each unpacking the request with protobuf-c, calling the core (snap.c) and answering with the
 * status containerd's errdefs expects, as contrib/snapshotservice does for containerd's own
 * snapshotters. Handlers run on the transport's worker threads; the core does its own locking.
 *
 * Keys are used verbatim: containerd's metadata layer already namespaces them ("<ns>/<n>/<key>")
 * before they reach a proxy, and contrib/snapshotservice ignores containerd-namespace too.
 *
 * List streams ListSnapshotsResponse messages of up to LIST_BATCH infos (containerd sends 100).
 * A batch is built by appending each packed Info as field 1 (tag 0x0a, length-prefixed), which is
 * exactly the encoding of the repeated field, so no info is copied. */
#include "plugin/snapshot/service.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "plugin/grpc/grpc.h"
#include "plugin/snapshot/snapshots.pb-c.h"

#define SVC "/containerd.services.snapshots.v1.Snapshots/"
#define PB(name) Containerd__Services__Snapshots__V1__##name
#define PBD(name) containerd__services__snapshots__v1__##name##__descriptor

enum { LIST_BATCH = 100, LIST_BATCH_BYTES = 1 << 20 };

struct snapshot_service {
  snap *core;
  grpc_server *server;
  struct grpc_method methods[10];
};

/* Every map<string,string> entry type protobuf-c generates has this layout. */
struct pb_kv {
  ProtobufCMessage base;
  char *key;
  char *value;
};

/* The gRPC codes containerd's errdefs turns back into ErrNotFound, ErrAlreadyExists,
 * ErrFailedPrecondition, ErrInvalidArgument. */
int snap_grpc_status(int code) {
  switch (code) {
  case EP_OK:
    return GRPC_OK;
  case EP_ENOTFOUND:
    return GRPC_NOT_FOUND;
  case SNAP_EEXISTS:
    return GRPC_ALREADY_EXISTS;
  case SNAP_EPRECOND:
    return GRPC_FAILED_PRECONDITION;
  case EP_EINVAL:
  case EP_ETOOBIG:
    return GRPC_INVALID_ARGUMENT;
  case EP_EUNSUPPORTED:
    return GRPC_UNIMPLEMENTED;
  case EP_ECANCELED:
    return GRPC_CANCELLED;
  case EP_ENOSPC:
    return GRPC_RESOURCE_EXHAUSTED;
  case EP_EUNREACH:
    return GRPC_UNAVAILABLE;
  default:
    return GRPC_UNKNOWN;
  }
}

static void finish_err(grpc_call *c, const ep_err *err) {
  grpc_call_finish(c, snap_grpc_status(err->code), err->msg);
}

static void send_and_finish(grpc_call *c, const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL) {
    grpc_call_finish(c, GRPC_INTERNAL, "out of memory");
    return;
  }
  protobuf_c_message_pack(m, buf);
  if (grpc_call_send(c, buf, n) < 0) {
    free(buf);
    grpc_call_finish(c, GRPC_CANCELLED, "peer went away");
    return;
  }
  free(buf);
  grpc_call_finish(c, GRPC_OK, NULL);
}

static void send_empty(grpc_call *c) {
  static const uint8_t none[1];
  if (grpc_call_send(c, none, 0) < 0)
    grpc_call_finish(c, GRPC_CANCELLED, "peer went away");
  else
    grpc_call_finish(c, GRPC_OK, NULL);
}

static ProtobufCMessage *unpack(grpc_call *c, const ProtobufCMessageDescriptor *d,
                                const uint8_t *req, size_t len) {
  ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, req);
  if (m == NULL)
    grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "malformed request message");
  return m;
}

/* A view of the request's map entries (no copies; valid while the message lives). */
static int labels_view(void *const *entries, size_t n, struct snap_labels *out, ep_err *err) {
  out->n = 0;
  out->v = NULL;
  if (n == 0)
    return 0;
  if (n > SNAP_MAX_LABELS)
    return ep_error(err, EP_EINVAL, "more than %d labels", SNAP_MAX_LABELS);
  if ((out->v = calloc(n, sizeof *out->v)) == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  for (size_t i = 0; i < n; i++) {
    const struct pb_kv *kv = entries[i];
    out->v[i].key = kv->key;
    out->v[i].value = kv->value;
  }
  out->n = n;
  return 0;
}

/* Answers a Prepare/View/Mounts with one mount. */
static void send_mounts(grpc_call *c, const ProtobufCMessageDescriptor *d,
                        const struct snap_mount *sm) {
  Containerd__Types__Mount m = CONTAINERD__TYPES__MOUNT__INIT;
  Containerd__Types__Mount *mp = &m;
  m.type = (char *)sm->type;
  m.source = sm->source;
  m.n_options = sm->n_options;
  m.options = (char **)sm->options;
  /* The three responses share one layout: base, n_mounts, mounts. */
  PB(MountsResponse) resp = CONTAINERD__SERVICES__SNAPSHOTS__V1__MOUNTS_RESPONSE__INIT;
  resp.base.descriptor = d;
  resp.n_mounts = 1;
  resp.mounts = &mp;
  send_and_finish(c, &resp.base);
}

static void create(grpc_call *c, snap *core, enum snap_kind kind, const char *key,
                   const char *parent, void *const *entries, size_t n_labels,
                   const ProtobufCMessageDescriptor *resp_d) {
  ep_err err = {0};
  struct snap_labels l;
  struct snap_mount m = {0};
  int r = labels_view(entries, n_labels, &l, &err);
  if (r == 0)
    r = snap_prepare(core, kind, key, parent, &l, &m, &err);
  free(l.v);
  if (r < 0) {
    finish_err(c, &err);
    return;
  }
  send_mounts(c, resp_d, &m);
  snap_mount_free(&m);
}

static int64_t now_us(void) {
  return ep_mono_ns() / 1000;
}

/* A call's duration, failed or not: containerd retries what fails, and a
 * slow failure is as much the operator's business as a slow success. */
static void observe(void *core, enum metrics_snap_op op, int64_t t0) {
  struct metrics *m = snap_metrics(core);
  if (m != NULL)
    metrics_observe_us(&m->snap_seconds[op], (uint64_t)(now_us() - t0));
}

static void h_prepare(grpc_call *c, const uint8_t *req, size_t len, void *ud) {
  int64_t t0 = now_us();
  PB(PrepareSnapshotRequest) *m = (void *)unpack(c, &PBD(prepare_snapshot_request), req, len);
  if (m == NULL)
    return;
  create(c, ud, SNAP_KIND_ACTIVE, m->key, m->parent, (void *const *)m->labels, m->n_labels,
         &PBD(prepare_snapshot_response));
  protobuf_c_message_free_unpacked(&m->base, NULL);
  observe(ud, METRICS_SNAP_PREPARE, t0);
}

static void h_view(grpc_call *c, const uint8_t *req, size_t len, void *ud) {
  PB(ViewSnapshotRequest) *m = (void *)unpack(c, &PBD(view_snapshot_request), req, len);
  if (m == NULL)
    return;
  create(c, ud, SNAP_KIND_VIEW, m->key, m->parent, (void *const *)m->labels, m->n_labels,
         &PBD(view_snapshot_response));
  protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void h_mounts(grpc_call *c, const uint8_t *req, size_t len, void *ud) {
  PB(MountsRequest) *m = (void *)unpack(c, &PBD(mounts_request), req, len);
  if (m == NULL)
    return;
  ep_err err = {0};
  struct snap_mount mt = {0};
  if (snap_mounts(ud, m->key, &mt, &err) < 0)
    finish_err(c, &err);
  else
    send_mounts(c, &PBD(mounts_response), &mt);
  snap_mount_free(&mt);
  protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void h_commit(grpc_call *c, const uint8_t *req, size_t len, void *ud) {
  int64_t t0 = now_us();
  PB(CommitSnapshotRequest) *m = (void *)unpack(c, &PBD(commit_snapshot_request), req, len);
  if (m == NULL)
    return;
  ep_err err = {0};
  struct snap_labels l;
  int r = labels_view((void *const *)m->labels, m->n_labels, &l, &err);
  if (r == 0)
    r = snap_commit(ud, m->name, m->key, &l, &err);
  free(l.v);
  if (r < 0)
    finish_err(c, &err);
  else
    send_empty(c);
  protobuf_c_message_free_unpacked(&m->base, NULL);
  observe(ud, METRICS_SNAP_COMMIT, t0);
}

static void h_remove(grpc_call *c, const uint8_t *req, size_t len, void *ud) {
  int64_t t0 = now_us();
  PB(RemoveSnapshotRequest) *m = (void *)unpack(c, &PBD(remove_snapshot_request), req, len);
  if (m == NULL)
    return;
  ep_err err = {0};
  if (snap_remove(ud, m->key, &err) < 0)
    finish_err(c, &err);
  else
    send_empty(c);
  protobuf_c_message_free_unpacked(&m->base, NULL);
  observe(ud, METRICS_SNAP_REMOVE, t0);
}

/* A proto Info over a snap_info, with its storage (the caller provides it, nothing allocated
 * but the label entry arrays). */
struct info_pb {
  PB(Info) info;
  Google__Protobuf__Timestamp created, updated;
  PB(Info__LabelsEntry) * *ptrs;
  PB(Info__LabelsEntry) * entries;
};

static int info_pb_init(struct info_pb *p, const struct snap_info *i) {
  memset(p, 0, sizeof *p);
  p->info = (PB(Info))CONTAINERD__SERVICES__SNAPSHOTS__V1__INFO__INIT;
  p->created = (Google__Protobuf__Timestamp)GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  p->updated = p->created;
  p->created.seconds = i->created_ns / 1000000000;
  p->created.nanos = (int32_t)(i->created_ns % 1000000000);
  p->updated.seconds = i->updated_ns / 1000000000;
  p->updated.nanos = (int32_t)(i->updated_ns % 1000000000);
  p->info.name = i->name;
  p->info.parent = i->parent;
  p->info.kind = (PB(Kind))i->kind;
  p->info.created_at = &p->created;
  p->info.updated_at = &p->updated;
  if (i->labels.n == 0)
    return 0;
  p->ptrs = calloc(i->labels.n, sizeof *p->ptrs);
  p->entries = calloc(i->labels.n, sizeof *p->entries);
  if (p->ptrs == NULL || p->entries == NULL)
    return -1;
  for (size_t k = 0; k < i->labels.n; k++) {
    p->entries[k] =
        (PB(Info__LabelsEntry))CONTAINERD__SERVICES__SNAPSHOTS__V1__INFO__LABELS_ENTRY__INIT;
    p->entries[k].key = i->labels.v[k].key;
    p->entries[k].value = i->labels.v[k].value;
    p->ptrs[k] = &p->entries[k];
  }
  p->info.n_labels = i->labels.n;
  p->info.labels = p->ptrs;
  return 0;
}

static void info_pb_free(struct info_pb *p) {
  free(p->ptrs);
  free(p->entries);
}

/* Stat and Update answer { Info info = 1; }. */
static void send_info(grpc_call *c, const ProtobufCMessageDescriptor *d,
                      const struct snap_info *i) {
  struct info_pb p;
  if (info_pb_init(&p, i) < 0) {
    info_pb_free(&p);
    grpc_call_finish(c, GRPC_INTERNAL, "out of memory");
    return;
  }
  PB(StatSnapshotResponse) resp = CONTAINERD__SERVICES__SNAPSHOTS__V1__STAT_SNAPSHOT_RESPONSE__INIT;
  resp.base.descriptor = d;
  resp.info = &p.info;
  send_and_finish(c, &resp.base);
  info_pb_free(&p);
}

static void h_stat(grpc_call *c, const uint8_t *req, size_t len, void *ud) {
  PB(StatSnapshotRequest) *m = (void *)unpack(c, &PBD(stat_snapshot_request), req, len);
  if (m == NULL)
    return;
  ep_err err = {0};
  struct snap_info i = {0};
  if (snap_stat(ud, m->key, &i, &err) < 0)
    finish_err(c, &err);
  else
    send_info(c, &PBD(stat_snapshot_response), &i);
  snap_info_free(&i);
  protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void h_update(grpc_call *c, const uint8_t *req, size_t len, void *ud) {
  PB(UpdateSnapshotRequest) *m = (void *)unpack(c, &PBD(update_snapshot_request), req, len);
  if (m == NULL)
    return;
  ep_err err = {0};
  struct snap_info in = {0}, out = {0};
  int r = m->info == NULL ? ep_error(&err, EP_EINVAL, "update: no info") : 0;
  if (r == 0) {
    in.name = m->info->name;
    r = labels_view((void *const *)m->info->labels, m->info->n_labels, &in.labels, &err);
  }
  size_t n_paths = m->update_mask != NULL ? m->update_mask->n_paths : 0;
  if (r == 0)
    r = snap_update(ud, &in, (const char *const *)(n_paths ? m->update_mask->paths : NULL), n_paths,
                    &out, &err);
  free(in.labels.v);
  if (r < 0)
    finish_err(c, &err);
  else
    send_info(c, &PBD(update_snapshot_response), &out);
  snap_info_free(&out);
  protobuf_c_message_free_unpacked(&m->base, NULL);
}

struct list_batch {
  grpc_call *call;
  uint8_t *buf;
  size_t len, cap, count;
};

static int batch_flush(struct list_batch *b) {
  if (b->count == 0)
    return 0;
  int r = grpc_call_send(b->call, b->buf, b->len);
  b->len = b->count = 0;
  return r < 0 ? -EP_ECANCELED : 0;
}

static int list_one(const struct snap_info *i, void *ud) {
  struct list_batch *b = ud;
  struct info_pb p;
  int r = info_pb_init(&p, i);
  size_t n = r == 0 ? protobuf_c_message_get_packed_size(&p.info.base) : 0;
  if (r == 0 && b->len + n + 11 > b->cap) {
    size_t cap = b->len + n + 11 > LIST_BATCH_BYTES ? b->len + n + 11 : LIST_BATCH_BYTES;
    uint8_t *nb = realloc(b->buf, cap);
    r = nb == NULL ? -1 : 0;
    if (nb != NULL)
      b->buf = nb, b->cap = cap;
  }
  if (r == 0) {
    b->buf[b->len++] = 0x0a; /* field 1, length-delimited */
    for (uint64_t v = n;; v >>= 7) {
      b->buf[b->len++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
      if (v < 0x80)
        break;
    }
    b->len += protobuf_c_message_pack(&p.info.base, b->buf + b->len);
    b->count++;
  }
  info_pb_free(&p);
  if (r < 0)
    return -EP_EINTERNAL;
  if (b->count >= LIST_BATCH || b->len >= LIST_BATCH_BYTES)
    return batch_flush(b);
  return 0;
}

static void h_list(grpc_call *c, const uint8_t *req, size_t len, void *ud) {
  PB(ListSnapshotsRequest) *m = (void *)unpack(c, &PBD(list_snapshots_request), req, len);
  if (m == NULL)
    return;
  ep_err err = {0};
  struct list_batch b = {.call = c};
  int r = snap_walk(ud, (const char *const *)m->filters, m->n_filters, list_one, &b, &err);
  if (r == 0)
    r = batch_flush(&b);
  if (r == -EP_ECANCELED)
    grpc_call_finish(c, GRPC_CANCELLED, "peer went away");
  else if (r == -EP_EINTERNAL && err.code == 0)
    grpc_call_finish(c, GRPC_INTERNAL, "out of memory");
  else if (r < 0)
    finish_err(c, &err);
  else
    grpc_call_finish(c, GRPC_OK, NULL);
  free(b.buf);
  protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void h_usage(grpc_call *c, const uint8_t *req, size_t len, void *ud) {
  PB(UsageRequest) *m = (void *)unpack(c, &PBD(usage_request), req, len);
  if (m == NULL)
    return;
  ep_err err = {0};
  struct snap_usage u;
  if (snap_usage(ud, m->key, &u, &err) < 0) {
    finish_err(c, &err);
  } else {
    PB(UsageResponse) resp = CONTAINERD__SERVICES__SNAPSHOTS__V1__USAGE_RESPONSE__INIT;
    resp.size = u.size;
    resp.inodes = u.inodes;
    send_and_finish(c, &resp.base);
  }
  protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void h_cleanup(grpc_call *c, const uint8_t *req, size_t len, void *ud) {
  PB(CleanupRequest) *m = (void *)unpack(c, &PBD(cleanup_request), req, len);
  if (m == NULL)
    return;
  ep_err err = {0};
  if (snap_cleanup(ud, &err) < 0)
    finish_err(c, &err);
  else
    send_empty(c);
  protobuf_c_message_free_unpacked(&m->base, NULL);
}

int snapshot_service_start(const struct snapshot_service_opts *o, snapshot_service **out,
                           ep_err *err) {
  /* the transport accepts until EAGAIN: a blocking socket (systemd's) would stall its loop */
  int fl = fcntl(o->listen_fd, F_GETFL);
  if (fl < 0 || fcntl(o->listen_fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return ep_syserror(err, EP_EINVAL, "snapshot service: listening socket");
  snapshot_service *s = calloc(1, sizeof *s);
  if (s == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  struct snap_opts so = {
      .root = o->root, .remote = o->remote, .remote_ud = o->remote_ud, .metrics = o->metrics};
  int r = snap_open(&so, &s->core, err);
  if (r < 0) {
    free(s);
    return r;
  }
  static const struct {
    const char *path;
    grpc_handler_fn fn;
  } table[10] = {{SVC "Prepare", h_prepare}, {SVC "View", h_view},     {SVC "Mounts", h_mounts},
                 {SVC "Commit", h_commit},   {SVC "Remove", h_remove}, {SVC "Stat", h_stat},
                 {SVC "Update", h_update},   {SVC "List", h_list},     {SVC "Usage", h_usage},
                 {SVC "Cleanup", h_cleanup}};
  for (size_t i = 0; i < 10; i++)
    s->methods[i] = (struct grpc_method){table[i].path, table[i].fn, s->core};
  struct grpc_server_opts go = {.listen_fd = o->listen_fd,
                                .methods = s->methods,
                                .n_methods = 10,
                                .max_workers = o->max_workers};
  if ((r = grpc_server_start(&go, &s->server, err)) < 0) {
    snap_close(s->core);
    free(s);
    return ep_wrap(err, "snapshot service");
  }
  *out = s;
  return 0;
}

void snapshot_service_stop(snapshot_service *s) {
  if (s == NULL)
    return;
  grpc_server_stop(s->server);
  snap_close(s->core);
  free(s);
}

snap *snapshot_service_core(snapshot_service *s) {
  return s->core;
}
