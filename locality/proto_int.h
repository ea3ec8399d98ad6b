/* Internals shared by the files of the protocol module (proto.c: topics,
 * value classes, the JSON helpers below, state, inventory, parent;
 * proto_deploy.c: deploy, progress, report, built on proto.c, which never
 * calls it). Nothing outside locality/proto*.c includes this. */
#ifndef EP_LOCALITY_PROTO_INT_H
#define EP_LOCALITY_PROTO_INT_H

#include <jansson.h>

#include "locality/proto.h"

#define PROTO_INT_MAX (UINT64_C(1) << 53) /* largest integer any JSON reader keeps */
bool proto_addr_valid(const char *s);
bool proto_token_valid(const char *s);
/* Parses buf as a JSON object of protocol version 1 within limit bytes whose
 * "id" equals expected_id (unless NULL); *root and id[] are set on success. */
int proto_payload_open(const char *what, const void *buf, size_t len, size_t limit,
                       const char *expected_id, json_t **root, char id[PROTO_ID_MAX + 1],
                       ep_err *err);
/* Reads string field key into buf[size]: 1 present, 0 absent, <0 invalid. */
int proto_get_str(const char *what, json_t *o, const char *key, bool required, char *buf,
                  size_t size, bool (*valid)(const char *), ep_err *err);
int proto_get_uint(const char *what, json_t *o, const char *key, bool required, uint64_t max,
                   uint64_t *out, ep_err *err);
/* Builders: a char array field of a caller's struct must be terminated and valid. */
int proto_check_field(const char *what, const char *key, const char *s, size_t size,
                      bool (*valid)(const char *), ep_err *err);
/* Dumps root compactly, refusing output over limit. Consumes root. */
int proto_dump(const char *what, json_t *root, size_t limit, char **out, size_t *len, ep_err *err);

#endif
