/* deploy --import containerd through edgepull's snapshotter (docs/snapshotter.md, "Deploy import"):
 * the image record, its manifest and config go to containerd over its gRPC API, and every layer
 * becomes a snapshot through containerd's Snapshots service with the remote-snapshotter labels, so
 * containerd proxies the Prepare back to edgepulld's snapshotter, which unpacks the layer from its
 * own store and answers AlreadyExists. containerd's content store never holds a layer blob.
 *
 * The calls, all in namespace k8s.io (like the ctr import) and under one lease so containerd's GC
 * cannot collect a half-made import:
 *   Leases.Create; per layer Snapshots.Prepare(key, parent chain ID, labels snapshot.ref=<chain
 * ID>, cri.layer-digest, cri.image-ref) → ALREADY_EXISTS; Content.Write of the config (labelled
 *   gc.ref.snapshot.<snapshotter>=<top chain ID>, which is how containerd marks an image unpacked
 * for a snapshotter) and of the manifest (gc.ref.content.config); Images.Create (or Update);
 *   Leases.Delete. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "plugin/deploy/deploy_int.h"
#include "plugin/deploy/proto/ctrd.pb-c.h"
#include "plugin/fetch/fetch.h"
#include "store/pipe.h"
#include "plugin/grpc/grpc.h"
#include "plugin/grpc/grpc_client.h"
#include "plugin/mirror/chains.h"

#define CTRD_NS "k8s.io"
#define CTRD_GC_EXPIRE_S 3600

struct ctrd {
  const char *sock;
  char lease[64];
  int timeout_ms;
  atomic_bool *stop;
  atomic_ulong *seq; /* the worker's, for names unique in this process */
  char msg[256];     /* the last call's grpc-message (decoded and masked by the client) */
};

/* One unary call; *status is containerd's gRPC status. */
static int ctrd_call(struct ctrd *c, const char *path, const ProtobufCMessage *req, int *status,
                     ep_err *err) {
  if (atomic_load(c->stop))
    return ep_error(err, EP_ECANCELED, "edgepulld is stopping");
  size_t len = protobuf_c_message_get_packed_size(req);
  uint8_t *buf = malloc(len ? len : 1);
  if (buf == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  protobuf_c_message_pack(req, buf);
  /* stopping edgepulld aborts a call in flight, not only the next one */
  struct grpc_client_call call = {
      .socket = c->sock, .path = path, .timeout_ms = c->timeout_ms, .cancel = c->stop};
  call.md_name[0] = "containerd-namespace";
  call.md_value[0] = CTRD_NS;
  if (c->lease[0] != '\0') {
    call.md_name[1] = "containerd-lease";
    call.md_value[1] = c->lease;
  }
  /* no answer is read: the status says all the import needs */
  int r = grpc_client_unary(&call, buf, len, NULL, status, c->msg, sizeof c->msg, err);
  free(buf);
  if (r < 0)
    return ep_wrap(err, "%s", path);
  if (*status != GRPC_OK)
    ep_log_debug("containerd %s: status %d %s", path, *status, c->msg);
  return 0;
}

static int want_ok(const struct ctrd *c, int status, const char *what, ep_err *err) {
  return status == GRPC_OK ? 0
                           : ep_error(err, EP_EUPSTREAM, "containerd %s: gRPC status %d: %s", what,
                                      status, c->msg);
}

static int lease_create(struct ctrd *c, ep_err *err) {
  char expire[32];
  time_t t = time(NULL) + CTRD_GC_EXPIRE_S;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(expire, sizeof expire, "%Y-%m-%dT%H:%M:%SZ", &tm);
  Edgepull__Ctrd__LeaseCreateRequest__LabelsEntry e =
      EDGEPULL__CTRD__LEASE_CREATE_REQUEST__LABELS_ENTRY__INIT;
  Edgepull__Ctrd__LeaseCreateRequest__LabelsEntry *ep[] = {&e};
  e.key = "containerd.io/gc.expire";
  e.value = expire;
  Edgepull__Ctrd__LeaseCreateRequest req = EDGEPULL__CTRD__LEASE_CREATE_REQUEST__INIT;
  req.labels = ep;
  req.n_labels = 1;
  /* Unique among this process's imports, however many run at once. A lease that an earlier
   * process with the same pid left (pid 1 in a container, a crash) is stepped over; it expires. */
  char id[sizeof c->lease];
  int r = 0, st = GRPC_ALREADY_EXISTS;
  for (int tries = 0; r == 0 && st == GRPC_ALREADY_EXISTS && tries < 8; tries++) {
    deploy_import_id(c->seq, id, sizeof id);
    req.id = id;
    r = ctrd_call(c, "/containerd.services.leases.v1.Leases/Create", &req.base, &st, err);
  }
  if (r == 0 && (r = want_ok(c, st, "Leases.Create", err)) == 0)
    memcpy(c->lease, id, sizeof id);
  return r;
}

static void lease_delete(struct ctrd *c) {
  if (c->lease[0] == '\0')
    return;
  Edgepull__Ctrd__LeaseDeleteRequest req = EDGEPULL__CTRD__LEASE_DELETE_REQUEST__INIT;
  char id[sizeof c->lease];
  memcpy(id, c->lease, sizeof id);
  req.id = id;
  c->lease[0] = '\0';
  ep_err e = {0};
  int st = 0;
  if (ctrd_call(c, "/containerd.services.leases.v1.Leases/Delete", &req.base, &st, &e) < 0 ||
      st != GRPC_OK)
    ep_log_warn("deploy import: deleting lease %s: %s (status %d; it expires by itself)", id, e.msg,
                st);
}

/* The layer's snapshot, made by edgepull's remote path behind containerd's metadata. */
static int prepare_layer(struct ctrd *c, const char *snapshotter, const char *image,
                         const digest_t *layer, const digest_t *chain, const digest_t *parent,
                         ep_err *err) {
  char ld[DIGEST_STR_LEN + 1], cd[DIGEST_STR_LEN + 1], pd[DIGEST_STR_LEN + 1] = "";
  char key[sizeof c->lease + DIGEST_STR_LEN + 2];
  digest_format(layer, ld);
  digest_format(chain, cd);
  if (parent != NULL)
    digest_format(parent, pd);
  /* under the lease's unique name: two imports sharing a layer never share an active key */
  snprintf(key, sizeof key, "%s %s", c->lease, cd);
  Edgepull__Ctrd__PrepareSnapshotRequest__LabelsEntry l[3] = {
      EDGEPULL__CTRD__PREPARE_SNAPSHOT_REQUEST__LABELS_ENTRY__INIT,
      EDGEPULL__CTRD__PREPARE_SNAPSHOT_REQUEST__LABELS_ENTRY__INIT,
      EDGEPULL__CTRD__PREPARE_SNAPSHOT_REQUEST__LABELS_ENTRY__INIT};
  Edgepull__Ctrd__PrepareSnapshotRequest__LabelsEntry *lp[] = {&l[0], &l[1], &l[2]};
  l[0].key = "containerd.io/snapshot.ref";
  l[0].value = cd;
  l[1].key = "containerd.io/snapshot/cri.layer-digest";
  l[1].value = ld;
  l[2].key = "containerd.io/snapshot/cri.image-ref";
  l[2].value = (char *)image;
  Edgepull__Ctrd__PrepareSnapshotRequest req = EDGEPULL__CTRD__PREPARE_SNAPSHOT_REQUEST__INIT;
  req.snapshotter = (char *)snapshotter;
  req.key = key;
  req.parent = pd;
  req.labels = lp;
  req.n_labels = 3;
  int st = 0;
  int r = ctrd_call(c, "/containerd.services.snapshots.v1.Snapshots/Prepare", &req.base, &st, err);
  if (r < 0 || st == GRPC_ALREADY_EXISTS /* unpacked by edgepull, recorded by containerd */)
    return r;
  if (st == GRPC_OK) {
    /* an ordinary active snapshot: the remote path did not take the layer */
    Edgepull__Ctrd__RemoveSnapshotRequest rm = EDGEPULL__CTRD__REMOVE_SNAPSHOT_REQUEST__INIT;
    rm.snapshotter = (char *)snapshotter;
    rm.key = key;
    ep_err e = {0};
    ctrd_call(c, "/containerd.services.snapshots.v1.Snapshots/Remove", &rm.base, &st, &e);
    return ep_error(err, EP_EUNSUPPORTED,
                    "snapshotter %s did not unpack layer %s (is it edgepulld's?)", snapshotter, ld);
  }
  return ep_error(err, EP_EUPSTREAM, "containerd Snapshots.Prepare of layer %s: gRPC status %d: %s",
                  ld, st, c->msg);
}

/* Sets one label on a blob containerd holds already. */
static int update_label(struct ctrd *c, char *d, char *key, char *val, int *st, ep_err *err) {
  char path[160];
  if ((size_t)snprintf(path, sizeof path, "labels.%s", key) >= sizeof path)
    return ep_error(err, EP_EINTERNAL, "label %s too long", key);
  Edgepull__Ctrd__ContentInfo__LabelsEntry l = EDGEPULL__CTRD__CONTENT_INFO__LABELS_ENTRY__INIT;
  Edgepull__Ctrd__ContentInfo__LabelsEntry *lp = &l;
  l.key = key;
  l.value = val;
  Edgepull__Ctrd__ContentInfo info = EDGEPULL__CTRD__CONTENT_INFO__INIT;
  info.digest = d;
  info.labels = &lp;
  info.n_labels = 1;
  char *paths[] = {path};
  Edgepull__Ctrd__FieldMask mask = EDGEPULL__CTRD__FIELD_MASK__INIT;
  mask.paths = paths;
  mask.n_paths = 1;
  Edgepull__Ctrd__UpdateContentRequest req = EDGEPULL__CTRD__UPDATE_CONTENT_REQUEST__INIT;
  req.info = &info;
  req.update_mask = &mask;
  return ctrd_call(c, "/containerd.services.content.v1.Content/Update", &req.base, st, err);
}

/* Writes a blob into containerd's content store with one label (all an import sets on a blob), or
 * sets the label when the blob is there from an earlier import or pull. */
static int put_content(struct ctrd *c, const digest_t *dg, const void *body, size_t len, char *key,
                       char *val, ep_err *err) {
  char d[DIGEST_STR_LEN + 1], ref[sizeof c->lease + DIGEST_STR_LEN + 2];
  digest_format(dg, d);
  snprintf(ref, sizeof ref, "%s-%s", c->lease, d);
  Edgepull__Ctrd__WriteContentRequest__LabelsEntry l =
      EDGEPULL__CTRD__WRITE_CONTENT_REQUEST__LABELS_ENTRY__INIT;
  Edgepull__Ctrd__WriteContentRequest__LabelsEntry *lp = &l;
  l.key = key;
  l.value = val;
  Edgepull__Ctrd__WriteContentRequest req = EDGEPULL__CTRD__WRITE_CONTENT_REQUEST__INIT;
  req.action = EDGEPULL__CTRD__WRITE_ACTION__COMMIT;
  req.ref = ref;
  req.total = (int64_t)len;
  req.expected = d;
  req.data.data = (uint8_t *)body;
  req.data.len = len;
  req.labels = &lp;
  req.n_labels = 1;
  int st = 0;
  int r = ctrd_call(c, "/containerd.services.content.v1.Content/Write", &req.base, &st, err);
  if (r == 0 && st == GRPC_ALREADY_EXISTS)
    r = update_label(c, d, key, val, &st, err);
  return r < 0 ? r : want_ok(c, st, "Content.Write", err);
}

static int create_image(struct ctrd *c, const char *name, const char *media_type,
                        const digest_t *dg, size_t size, ep_err *err) {
  char d[DIGEST_STR_LEN + 1];
  digest_format(dg, d);
  Edgepull__Ctrd__Descriptor t = EDGEPULL__CTRD__DESCRIPTOR__INIT;
  t.media_type = (char *)media_type;
  t.digest = d;
  t.size = (int64_t)size;
  Edgepull__Ctrd__Timestamp now = EDGEPULL__CTRD__TIMESTAMP__INIT;
  now.seconds = (int64_t)time(NULL);
  Edgepull__Ctrd__Image img = EDGEPULL__CTRD__IMAGE__INIT;
  img.name = (char *)name;
  img.target = &t;
  img.created_at = &now;
  img.updated_at = &now;
  Edgepull__Ctrd__CreateImageRequest req = EDGEPULL__CTRD__CREATE_IMAGE_REQUEST__INIT;
  req.image = &img;
  int st = 0;
  int r = ctrd_call(c, "/containerd.services.images.v1.Images/Create", &req.base, &st, err);
  const char *what = "Images.Create";
  if (r == 0 && st == GRPC_ALREADY_EXISTS) {
    /* only the target moves: the record's labels and created_at stay as containerd has them */
    char *paths[] = {"target"};
    Edgepull__Ctrd__FieldMask mask = EDGEPULL__CTRD__FIELD_MASK__INIT;
    mask.paths = paths;
    mask.n_paths = 1;
    Edgepull__Ctrd__UpdateImageRequest up = EDGEPULL__CTRD__UPDATE_IMAGE_REQUEST__INIT;
    up.image = &img;
    up.update_mask = &mask;
    what = "Images.Update";
    r = ctrd_call(c, "/containerd.services.images.v1.Images/Update", &up.base, &st, err);
  }
  return r < 0 ? r : want_ok(c, st, what, err);
}

/* The node's own platform manifest of ref (the top one, or its child in an index). */
static int own_manifest(const struct deploy_deps *d, const struct deploy_options *o,
                        const struct deploy_ref *ref, struct mirror_manifest *m, ep_err *err) {
  int r = deploy_load_manifest(d, ref, ref->has_digest ? &ref->digest : NULL, m, err);
  if (r < 0 || (r = deploy_is_index(m->body, m->len, m->media_type, err)) <= 0)
    return r;
  struct deploy_platform own = {.os = "linux"};
  snprintf(own.arch, sizeof own.arch, "%s", o->arch);
  snprintf(own.variant, sizeof own.variant, "%s", o->variant);
  digest_t kid;
  size_t n = 0;
  r = deploy_select(m->body, m->len, &own, 1, &kid, &n, err);
  mirror_manifest_clear(m);
  if (r < 0)
    return r;
  if (n == 0)
    return ep_error(err, EP_ENOTFOUND, "the image has no manifest for linux/%s", o->arch);
  return deploy_load_manifest(d, ref, &kid, m, err);
}

/* The config from the store, waiting for the deploy's own fetch of it when the import runs while
 * the blobs stream in (fetcher_open_req joins the fetch in flight, or starts one). */
static int read_config(const struct deploy_deps *d, const struct deploy_ref *ref,
                       const struct deploy_blob *b, atomic_bool *stop, void **out, size_t *len,
                       ep_err *err) {
  if (store_has(d->st, &b->digest, NULL, NULL) != 1) {
    blob_pipe *p = NULL;
    struct fetch_request rq = {.size = b->size};
    int r = fetcher_open_req(d->fetch, ref->registry, ref->repo, &b->digest, &rq, &p, err);
    if (r < 0)
      return ep_wrap(err, "config");
    uint64_t avail = 0;
    for (;;) {
      r = pipe_wait_end(p, &avail, 1000);
      if (r != PIPE_TIMEOUT || atomic_load(stop))
        break;
    }
    /* done means stored once the writer has finished with the store */
    while (r == PIPE_DONE && pipe_wait_finished(p, 1000) == PIPE_TIMEOUT && !atomic_load(stop))
      ;
    pipe_unref(p);
    if (r != PIPE_DONE)
      return ep_error(err, EP_EIO, "config: the fetch did not complete");
  }
  return store_read_all(d->st, &b->digest, CHAINS_CONFIG_MAX, out, len, err);
}

/* Leased part: snapshots, then config and manifest blobs, then the image record. */
static int import_leased(struct ctrd *c, const struct deploy_options *o, const char *name,
                         const struct mirror_manifest *m, const struct deploy_blob *blobs,
                         size_t nb, const digest_t *chains, const void *cfg, size_t cfglen,
                         ep_err *err) {
  size_t nl = nb - 1;
  for (size_t i = 0; i < nl; i++) {
    int r = prepare_layer(c, o->snapshotter, name, &blobs[1 + i].digest, &chains[i],
                          i ? &chains[i - 1] : NULL, err);
    if (r < 0)
      return r;
  }
  char key[128], top[DIGEST_STR_LEN + 1], cd[DIGEST_STR_LEN + 1];
  snprintf(key, sizeof key, "containerd.io/gc.ref.snapshot.%s", o->snapshotter);
  digest_format(&chains[nl - 1], top);
  int r = put_content(c, &blobs[0].digest, cfg, cfglen, key, top, err);
  if (r < 0)
    return ep_wrap(err, "config");
  digest_format(&blobs[0].digest, cd);
  char cfg_key[] = "containerd.io/gc.ref.content.config";
  if ((r = put_content(c, &m->digest, m->body, m->len, cfg_key, cd, err)) < 0)
    return ep_wrap(err, "manifest");
  return create_image(c, name, m->media_type, &m->digest, m->len, err);
}

void deploy_import_id(atomic_ulong *seq, char *out, size_t cap) {
  snprintf(out, cap, "edgepull-import-%ld-%lu", (long)getpid(), atomic_fetch_add(seq, 1));
}

int deploy_import_snapshotter(const struct deploy_deps *d, const struct deploy_options *o,
                              const struct deploy_ref *ref, atomic_bool *stop, atomic_ulong *seq,
                              ep_err *err) {
  struct mirror_manifest m;
  memset(&m, 0, sizeof m);
  struct deploy_blob *blobs = NULL;
  size_t nb = 0;
  void *cfg = NULL;
  size_t cfglen = 0;
  digest_t *chains = NULL;
  char name[PROTO_IMAGE_MAX + NAMES_HOST_MAX + 16];
  deploy_full_name(ref, name, sizeof name);
  int r = own_manifest(d, o, ref, &m, err);
  if (r == 0)
    r = deploy_manifest_blobs(m.body, m.len, &blobs, &nb, err);
  if (r == 0 && nb < 2)
    r = ep_error(err, EP_EINVAL, "manifest without layers");
  if (r == 0)
    r = read_config(d, ref, &blobs[0], stop, &cfg, &cfglen, err);
  if (r == 0 && (chains = calloc(nb, sizeof *chains)) == NULL)
    r = ep_error(err, EP_EINTERNAL, "out of memory");
  if (r == 0)
    r = chains_from_config(cfg, cfglen, nb - 1, chains, err);
  struct ctrd c = {
      .sock = o->containerd_address, .stop = stop, .seq = seq, .timeout_ms = 600 * 1000};
  if (r == 0)
    r = lease_create(&c, err);
  if (r == 0)
    r = import_leased(&c, o, name, &m, blobs, nb, chains, cfg, cfglen, err);
  lease_delete(&c);
  if (r == 0)
    ep_log_info("deploy import: %s in containerd, %zu layers unpacked by snapshotter %s", name,
                nb - 1, o->snapshotter);
  free(chains);
  free(cfg);
  free(blobs);
  mirror_manifest_clear(&m);
  return r;
}
