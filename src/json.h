/*
 * json.h: json.c's reader, for the skims that walk a text with json.c's
 * primitives (answer_skim.c) without building it. No I/O, no libcurl.
 */
#ifndef OPENTACT_JSON_H
#define OPENTACT_JSON_H

#include "opentact.h"

#define JSON_MAX_DEPTH 1000

typedef struct json_reader {
    lua_State *L;
    const char *start;
    const char *p;
    const char *end;
    const char *error; /* what went wrong, NULL while all is well */
    int depth;
    int holes[2];      /* nulls left out of the arrays of "payload": in it, and in its members */
    int in_payload;    /* reading that member (or the members of a top-level array) */
    json_names *names; /* member names seen before, or NULL */
    int anchor;        /* stack index of the table that keeps those names alive */
} json_reader;

/* Records what went wrong (the first thing only) and returns 0. */
OT_HIDDEN int json_fail(json_reader *r, const char *what);
OT_HIDDEN void json_skip_space(json_reader *r);
/* Skips a string at r->p (on its opening quote), checking its escapes. */
OT_HIDDEN int json_skip_string(json_reader *r);
/* Skips any value (after white space), as strictly as json_decode reads it. */
OT_HIDDEN int json_skip_value(json_reader *r);
/* At a container's next member or element: 1 when one follows (past its
 * ',' unless it is the first), 0 when the container ends here (r->p past
 * `close`), -1 on anything else (the error set). */
OT_HIDDEN int json_next_item(json_reader *r, char close, int *first);
/* A member's name and its ':', r->p then on its value; *match: whether the
 * name is `name` (with `plain`, a name with escapes is refused); *quoted
 * (when given): the name's bytes with their quotes. */
OT_HIDDEN int json_member_name(json_reader *r, const char *name, size_t len, int *match, int plain,
                               size_t *quoted);

#endif
