// shard_source.h - the optional `structure_source` root attribute of a shard (design
// section 5): where predicted structures came from, e.g. "ViennaRNA 2.7.2 MFE, 37C, ...".
// Kept apart from the writer: nvwa-fold sets it on a shard that nv_shard_write has just
// written (under its temporary name, before the rename).
#pragma once
#include <stddef.h>

#include "data/nv_util.h"

// Set (or replace) the attribute on the shard at `path`. 0, or -1 with err set.
int nv_shard_set_source(const char *path, const char *source, nv_error *err);
// 1 and the value in buf when the shard has the attribute, 0 when not, -1 on error.
int nv_shard_get_source(const char *path, char *buf, size_t n, nv_error *err);
