/*
 * safetensors.h — memory-mapped safetensors files and the tensor store of a model
 * directory (a single model.safetensors, or model.safetensors.index.json + shards).
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 *   { name: {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end)}, "__metadata__": {..} }
 * with offsets relative to the data section that follows the header.
 *
 * Nothing read from a file is trusted: the header length, every offset and shape is
 * checked (overflow, bounds, overlap, dtype size x shape == byte length) before any
 * pointer into the mapping is formed. Weights are never copied: roe_tensor.data
 * points into the read-only mapping, which lives as long as the file/store handle.
 */
#ifndef ROE_SAFETENSORS_H
#define ROE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/status.h"

enum { ROE_TENSOR_MAX_DIMS = 8 };

/* One tensor of a mapped file. All pointers are owned by the file handle. */
struct roe_tensor {
    const char *name;  /* tensor name, NUL-terminated */
    const char *file;  /* path of the file it lives in (for messages) */
    roe_dtype dtype;
    int ndim;
    int64_t shape[ROE_TENSOR_MAX_DIMS];
    const void *data;  /* into the read-only mapping; nbytes long */
    size_t nbytes;
    /* A block-quantized tensor of a store (dtype Q8/Q4): the logical tensor that the file
     * holds as NAME_blocks + NAME_scales (+ NAME_mins), see runtime/quant.h. shape's last
     * dimension counts the stored (padded) columns; data is the blocks; NULL otherwise. */
    const uint16_t *scales, *mins;
};

/* ---- one file ---- */
typedef struct roe_st_file roe_st_file;

/* Maps `path` read-only, parses and validates the header. On failure *out is NULL and
 * the message names the file (and the tensor, where one is at fault). */
roe_status roe_st_open(const char *path, roe_st_file **out);
void roe_st_close(roe_st_file *f);
size_t roe_st_count(const roe_st_file *f);
const struct roe_tensor *roe_st_at(const roe_st_file *f, size_t i);
const struct roe_tensor *roe_st_find(const roe_st_file *f, const char *name); /* NULL if absent */

/* ---- a model directory ---- */
typedef struct roe_store roe_store;

/* Opens dir/model.safetensors.index.json (sharded) if present, else dir/model.safetensors.
 * Validates the index (weight_map present, every file exists and opens, every tensor the
 * index names is in the file it names, no tensor in two files). */
roe_status roe_store_open(const char *dir, roe_store **out);
void roe_store_close(roe_store *s);
const struct roe_tensor *roe_store_find(const roe_store *s, const char *name); /* NULL if absent */
size_t roe_store_count(const roe_store *s);
const struct roe_tensor *roe_store_at(const roe_store *s, size_t i);
size_t roe_store_n_files(const roe_store *s);

#endif
