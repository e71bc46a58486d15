/* pyroscope/push.c: PushRequest encoding and decoding (see pyroscope/push.h). */
#include "pyroscope/push.h"

#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/grow.h"
#include "push/v1/push.pb-c.h"

typedef Push__V1__PushRequest pb_req;
typedef Push__V1__RawProfileSeries pb_series;
typedef Push__V1__RawSample pb_sample;
typedef Types__V1__LabelPair pb_label;

/* One series: its labels and its one sample, in one allocation's worth of pieces. */
typedef struct {
  pb_series series;
  pb_sample sample;
  pb_sample *samples[1];
  pb_label *labels;
  pb_label **label_ptrs;
  char *strings; /* the packed label pairs, then the id */
  uint8_t *raw;
} series_t;

struct mw_pyroenc {
  series_t *s;
  size_t n, cap;
  uint8_t *out;
};

mw_pyroenc_t *mw_ffi_pyroenc_new(void) { return calloc(1, sizeof(mw_pyroenc_t)); }

static void clear(mw_pyroenc_t *e) {
  for (size_t i = 0; i < e->n; i++) {
    free(e->s[i].labels);
    free(e->s[i].label_ptrs);
    free(e->s[i].strings);
    free(e->s[i].raw);
  }
  e->n = 0;
}

void mw_ffi_pyroenc_free(mw_pyroenc_t *e) {
  if (!e) return;
  clear(e);
  free(e->s);
  free(e->out);
  free(e);
}

size_t mw_ffi_pyroenc_count(const mw_pyroenc_t *e) { return e->n; }

int mw_ffi_pyroenc_series(mw_pyroenc_t *e, const char *labels, size_t nlabels, const uint8_t *raw,
                          size_t rawlen, const char *id) {
  size_t bytes = 0;
  const char *at = labels;
  for (size_t i = 0; i < nlabels * 2; i++) {
    size_t l = strlen(at) + 1;
    bytes += l;
    at += l;
  }
  size_t idlen = strlen(id) + 1;
  if (mw_grow((void **)&e->s, &e->cap, e->n + 1, sizeof(series_t))) return -1;
  series_t *s = &e->s[e->n];
  memset(s, 0, sizeof(*s));
  s->labels = calloc(nlabels + 1, sizeof(pb_label));
  s->label_ptrs = calloc(nlabels + 1, sizeof(pb_label *));
  s->strings = malloc(bytes + idlen);
  s->raw = malloc(rawlen + 1);
  if (!s->labels || !s->label_ptrs || !s->strings || !s->raw) {
    free(s->labels);
    free(s->label_ptrs);
    free(s->strings);
    free(s->raw);
    return -1;
  }
  memcpy(s->strings, labels, bytes);
  memcpy(s->strings + bytes, id, idlen);
  memcpy(s->raw, raw, rawlen);
  char *p = s->strings;
  for (size_t i = 0; i < nlabels; i++) {
    types__v1__label_pair__init(&s->labels[i]);
    s->labels[i].name = p;
    p += strlen(p) + 1;
    s->labels[i].value = p;
    p += strlen(p) + 1;
    s->label_ptrs[i] = &s->labels[i];
  }
  push__v1__raw_sample__init(&s->sample);
  s->sample.raw_profile.data = s->raw;
  s->sample.raw_profile.len = rawlen;
  s->sample.id = p;
  push__v1__raw_profile_series__init(&s->series);
  s->series.n_labels = nlabels;
  s->series.labels = s->label_ptrs;
  s->series.n_samples = 1;
  e->n++;
  return 0;
}

int mw_ffi_pyroenc_finish(mw_pyroenc_t *e, const uint8_t **out, size_t *len, char *err,
                          size_t errlen) {
  pb_series **ptrs = calloc(e->n + 1, sizeof(*ptrs));
  if (!ptrs) {
    mw_oom(err, errlen);
    return -1;
  }
  for (size_t i = 0; i < e->n; i++) {
    series_t *s = &e->s[i];
    s->samples[0] = &s->sample; /* the array may have moved since series() */
    s->series.samples = s->samples;
    ptrs[i] = &s->series;
  }
  pb_req req;
  push__v1__push_request__init(&req);
  req.n_series = e->n;
  req.series = ptrs;
  size_t n = push__v1__push_request__get_packed_size(&req);
  uint8_t *buf = malloc(n + 1);
  if (!buf) {
    free(ptrs);
    mw_oom(err, errlen);
    return -1;
  }
  push__v1__push_request__pack(&req, buf);
  free(ptrs);
  free(e->out);
  e->out = buf;
  *out = buf;
  *len = n;
  clear(e);
  return 0;
}

struct mw_pyrodec {
  pb_req *req;
};

static int valid_name(const char *s) {
  if (!*s) return 0;
  for (const char *p = s; *p; p++) {
    char c = *p;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
             (p != s && c >= '0' && c <= '9');
    if (!ok) return 0;
  }
  return 1;
}

int mw_ffi_pyrodec_new(const uint8_t *body, size_t len, mw_pyrodec_t **out, char *err,
                       size_t errlen) {
  *out = NULL;
  pb_req *req = push__v1__push_request__unpack(NULL, len, body);
  if (!req) {
    mw_seterr(err, errlen, "not a push.v1.PushRequest message");
    return -1;
  }
  for (size_t i = 0; i < req->n_series; i++) {
    pb_series *s = req->series[i];
    if (!s->n_labels) {
      mw_seterr(err, errlen, "series %zu: no labels", i);
      goto bad;
    }
    for (size_t j = 0; j < s->n_labels; j++) {
      if (!valid_name(s->labels[j]->name)) {
        mw_seterr(err, errlen, "series %zu: invalid label name \"%.64s\"", i, s->labels[j]->name);
        goto bad;
      }
      for (size_t k = 0; k < j; k++)
        if (strcmp(s->labels[k]->name, s->labels[j]->name) == 0) {
          mw_seterr(err, errlen, "series %zu: label %s twice", i, s->labels[j]->name);
          goto bad;
        }
    }
    if (!s->n_samples) {
      mw_seterr(err, errlen, "series %zu: no samples", i);
      goto bad;
    }
    for (size_t k = 0; k < s->n_samples; k++)
      if (!s->samples[k]->raw_profile.len) {
        mw_seterr(err, errlen, "series %zu: sample %zu: empty profile", i, k);
        goto bad;
      }
  }
  *out = malloc(sizeof(mw_pyrodec_t));
  if (!*out) {
    mw_oom(err, errlen);
    goto bad;
  }
  (*out)->req = req;
  return 0;
bad:
  push__v1__push_request__free_unpacked(req, NULL);
  return -1;
}

void mw_ffi_pyrodec_free(mw_pyrodec_t *d) {
  if (!d) return;
  push__v1__push_request__free_unpacked(d->req, NULL);
  free(d);
}

size_t mw_ffi_pyrodec_series(const mw_pyrodec_t *d) { return d->req->n_series; }

int mw_ffi_pyrodec_info(const mw_pyrodec_t *d, size_t i, size_t *nlabels, size_t *nsamples) {
  if (i >= d->req->n_series) return -1;
  *nlabels = d->req->series[i]->n_labels;
  *nsamples = d->req->series[i]->n_samples;
  return 0;
}

int mw_ffi_pyrodec_label(const mw_pyrodec_t *d, size_t i, size_t j, const char **name,
                         const char **value) {
  if (i >= d->req->n_series || j >= d->req->series[i]->n_labels) return -1;
  *name = d->req->series[i]->labels[j]->name;
  *value = d->req->series[i]->labels[j]->value;
  return 0;
}

int mw_ffi_pyrodec_sample(const mw_pyrodec_t *d, size_t i, size_t k, const uint8_t **raw,
                          size_t *rawlen, const char **id) {
  if (i >= d->req->n_series || k >= d->req->series[i]->n_samples) return -1;
  pb_sample *s = d->req->series[i]->samples[k];
  *raw = s->raw_profile.data;
  *rawlen = s->raw_profile.len;
  *id = s->id;
  return 0;
}
