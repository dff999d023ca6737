/*
 * hispeed.log._rdbulk: Kafka records between librdkafka and Arrow buffers, in bulk.
 *
 * Reads: a consumer's fetched records straight into Arrow buffers (Fetcher).
 * Writes: an Arrow batch's records handed to a producer without a Python call each (produce).
 *
 * confluent-kafka makes a Python Message object of every record, and reading eight fields
 * back from each object costs as much again: about 1 us of CPU per record, half of a Kafka
 * query's loop. This module takes the records from librdkafka itself, a whole batch per
 * call, and copies keys, values, offsets and timestamps into contiguous buffers that Arrow
 * wraps without copying again.
 *
 * It drives the librdkafka that confluent-kafka loaded (the same library instance, found by
 * its path and opened with RTLD_NOLOAD), on that consumer's own handle (confluent-kafka's
 * Handle struct starts with the rd_kafka_t pointer, after the object header). Records are
 * taken from a queue of this module's: each assigned partition's fetch queue is forwarded to
 * it before the partition is assigned, so its records never reach the consumer queue that
 * confluent-kafka serves. Rebalances, errors, commits and every callback stay on that
 * consumer queue and are served by confluent-kafka's own poll: nothing here runs a callback.
 *
 * Only the stable public C API of librdkafka is used; its types are declared here because the
 * machine need not have librdkafka's headers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

/* -- the part of librdkafka's public API used here (rdkafka.h, ABI-stable since 1.0) ----- */

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_topic_s rd_kafka_topic_t;
typedef struct rd_kafka_queue_s rd_kafka_queue_t;
typedef struct rd_kafka_headers_s rd_kafka_headers_t;

typedef struct {
    int err;
    rd_kafka_topic_t *rkt;
    int32_t partition;
    void *payload;
    size_t len;
    void *key;
    size_t key_len;
    int64_t offset;
    void *_private;
} rd_kafka_message_t;

#define ERR_NO_ERROR 0
#define ERR_QUEUE_FULL (-184)
#define RD_KAFKA_PRODUCER 0
#define RD_KAFKA_CONSUMER 1
#define MSG_F_COPY 0x2
/* rd_kafka_vtype_t */
enum { V_END = 0, V_RKT = 2, V_PARTITION = 3, V_VALUE = 4, V_KEY = 5, V_MSGFLAGS = 7,
       V_TIMESTAMP = 8 };

static struct {
    int loaded;
    const char *(*version_str)(void);
    int (*type)(const rd_kafka_t *);
    const char *(*name)(const rd_kafka_t *);
    rd_kafka_queue_t *(*queue_new)(rd_kafka_t *);
    void (*queue_destroy)(rd_kafka_queue_t *);
    rd_kafka_queue_t *(*queue_get_partition)(rd_kafka_t *, const char *, int32_t);
    void (*queue_forward)(rd_kafka_queue_t *, rd_kafka_queue_t *);
    ssize_t (*consume_batch_queue)(rd_kafka_queue_t *, int, rd_kafka_message_t **, size_t);
    void (*message_destroy)(rd_kafka_message_t *);
    int64_t (*message_timestamp)(const rd_kafka_message_t *, int *);
    int (*message_headers)(const rd_kafka_message_t *, rd_kafka_headers_t **);
    size_t (*header_cnt)(const rd_kafka_headers_t *);
    int (*header_get_all)(const rd_kafka_headers_t *, size_t, const char **, const void **,
                          size_t *);
    const char *(*topic_name)(const rd_kafka_topic_t *);
    const char *(*err2str)(int);
    rd_kafka_topic_t *(*topic_new)(rd_kafka_t *, const char *, void *);
    void (*topic_destroy)(rd_kafka_topic_t *);
    int (*producev)(rd_kafka_t *, ...);
} rd;

/* load(path): the librdkafka already loaded at `path`; returns its version string */
static PyObject *load(PyObject *self, PyObject *args) {
    const char *path;
    if (!PyArg_ParseTuple(args, "s", &path))
        return NULL;
    void *lib = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (lib == NULL) {
        PyErr_Format(PyExc_ImportError, "librdkafka is not loaded from %s", path);
        return NULL;
    }
#define SYM(field, symbol)                                                                \
    do {                                                                                  \
        *(void **)(&rd.field) = dlsym(lib, symbol);                                       \
        if (rd.field == NULL) {                                                           \
            PyErr_Format(PyExc_ImportError, "%s has no %s", path, symbol);                \
            return NULL;                                                                  \
        }                                                                                 \
    } while (0)
    SYM(version_str, "rd_kafka_version_str");
    SYM(type, "rd_kafka_type");
    SYM(name, "rd_kafka_name");
    SYM(queue_new, "rd_kafka_queue_new");
    SYM(queue_destroy, "rd_kafka_queue_destroy");
    SYM(queue_get_partition, "rd_kafka_queue_get_partition");
    SYM(queue_forward, "rd_kafka_queue_forward");
    SYM(consume_batch_queue, "rd_kafka_consume_batch_queue");
    SYM(message_destroy, "rd_kafka_message_destroy");
    SYM(message_timestamp, "rd_kafka_message_timestamp");
    SYM(message_headers, "rd_kafka_message_headers");
    SYM(header_cnt, "rd_kafka_header_cnt");
    SYM(header_get_all, "rd_kafka_header_get_all");
    SYM(topic_name, "rd_kafka_topic_name");
    SYM(err2str, "rd_kafka_err2str");
    SYM(topic_new, "rd_kafka_topic_new");
    SYM(topic_destroy, "rd_kafka_topic_destroy");
    SYM(producev, "rd_kafka_producev");
#undef SYM
    rd.loaded = 1;
    return PyUnicode_FromString(rd.version_str());
}

/* -- Fetcher: a queue of this module's on one confluent-kafka Consumer ---------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *consumer; /* keeps the rd_kafka_t alive while the queue is */
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;
    rd_kafka_message_t **msgs;
    size_t capacity;
    int busy; /* a fetch waits without the GIL: its queue and array must stay */
} Fetcher;

static void Fetcher_release(Fetcher *f) {
    if (f->queue != NULL) {
        rd.queue_destroy(f->queue);
        f->queue = NULL;
    }
    PyMem_Free(f->msgs);
    f->msgs = NULL;
    f->capacity = 0;
}

static int Fetcher_idle(Fetcher *f) {
    if (f->busy) {
        PyErr_SetString(PyExc_RuntimeError, "this fetcher is fetching in another thread");
        return 0;
    }
    return 1;
}

static int Fetcher_init(Fetcher *f, PyObject *args, PyObject *kwds) {
    PyObject *consumer;
    if (!PyArg_ParseTuple(args, "O", &consumer) || !Fetcher_idle(f))
        return -1;
    if (!rd.loaded) {
        PyErr_SetString(PyExc_RuntimeError, "load() librdkafka first");
        return -1;
    }
    /* confluent-kafka's Handle: PyObject_HEAD, then rd_kafka_t *rk */
    rd_kafka_t *rk = *(rd_kafka_t **)((char *)consumer + sizeof(PyObject));
    if (rk == NULL || rd.type(rk) != RD_KAFKA_CONSUMER) {
        PyErr_SetString(PyExc_TypeError, "not an open confluent_kafka.Consumer");
        return -1;
    }
    Fetcher_release(f);
    Py_XSETREF(f->consumer, Py_NewRef(consumer));
    f->rk = rk;
    f->queue = rd.queue_new(rk);
    if (f->queue == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "librdkafka made no queue");
        return -1;
    }
    return 0;
}

static int Fetcher_traverse(Fetcher *f, visitproc visit, void *arg) {
    Py_VISIT(f->consumer);
    return 0;
}

static int Fetcher_clear(Fetcher *f) {
    Fetcher_release(f); /* before the consumer (and its rd_kafka_t) can go */
    Py_CLEAR(f->consumer);
    return 0;
}

static void Fetcher_dealloc(Fetcher *f) {
    PyObject_GC_UnTrack(f);
    Fetcher_clear(f);
    Py_TYPE(f)->tp_free((PyObject *)f);
}

static int Fetcher_open(Fetcher *f) {
    if (f->queue == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "this fetcher is closed");
        return 0;
    }
    return 1;
}

/* forward(topic, partition): that partition's records come to this fetcher's queue. Call it
 * before the partition is assigned: librdkafka leaves a fetch queue the application has
 * forwarded where it is when fetching starts. */
static PyObject *Fetcher_forward(Fetcher *f, PyObject *args) {
    const char *topic;
    int partition;
    if (!PyArg_ParseTuple(args, "si", &topic, &partition) || !Fetcher_open(f))
        return NULL;
    rd_kafka_queue_t *pq = rd.queue_get_partition(f->rk, topic, partition);
    if (pq == NULL) {
        PyErr_Format(PyExc_RuntimeError, "librdkafka has no fetch queue for %s[%d]", topic,
                     partition);
        return NULL;
    }
    rd.queue_forward(pq, f->queue);
    rd.queue_destroy(pq);
    Py_RETURN_NONE;
}

static int grow(Fetcher *f, size_t want) {
    if (want <= f->capacity)
        return 1;
    rd_kafka_message_t **more = PyMem_Realloc(f->msgs, want * sizeof(*more));
    if (more == NULL) {
        PyErr_NoMemory();
        return 0;
    }
    f->msgs = more;
    f->capacity = want;
    return 1;
}

/* One binary column: int32 offsets, data, and a validity bitmap (NULL pointer: null). */
typedef struct {
    PyObject *offsets, *data, *valid;
    Py_ssize_t nulls;
} Column;

static int column_make(Column *c, rd_kafka_message_t **m, Py_ssize_t n, int is_key) {
    size_t total = 0;
    c->nulls = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        total += is_key ? m[i]->key_len : m[i]->len;
        c->nulls += (is_key ? m[i]->key : m[i]->payload) == NULL;
    }
    if (total > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "a fetch of more than 2 GB");
        return 0;
    }
    c->offsets = PyBytes_FromStringAndSize(NULL, (n + 1) * sizeof(int32_t));
    c->data = PyBytes_FromStringAndSize(NULL, total);
    c->valid = c->nulls ? PyBytes_FromStringAndSize(NULL, (n + 7) / 8) : Py_NewRef(Py_None);
    if (c->offsets == NULL || c->data == NULL || c->valid == NULL)
        return 0;
    int32_t *offsets = (int32_t *)PyBytes_AS_STRING(c->offsets);
    char *data = PyBytes_AS_STRING(c->data);
    uint8_t *valid = c->nulls ? (uint8_t *)PyBytes_AS_STRING(c->valid) : NULL;
    if (valid != NULL)
        memset(valid, 0, (n + 7) / 8);
    int32_t at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const void *p = is_key ? m[i]->key : m[i]->payload;
        size_t len = is_key ? m[i]->key_len : m[i]->len;
        offsets[i] = at;
        if (p != NULL) {
            memcpy(data + at, p, len);
            at += (int32_t)len;
            if (valid != NULL)
                valid[i >> 3] |= (uint8_t)(1u << (i & 7));
        }
    }
    offsets[n] = at;
    return 1;
}

/* The headers of message i, as a list of (name, value) pairs, or NULL with none (no error). */
static PyObject *headers_of(rd_kafka_message_t *m) {
    rd_kafka_headers_t *hdrs;
    if (rd.message_headers(m, &hdrs) != ERR_NO_ERROR)
        return NULL;
    size_t count = rd.header_cnt(hdrs);
    PyObject *list = PyList_New((Py_ssize_t)count);
    if (list == NULL)
        return NULL;
    for (size_t j = 0; j < count; j++) {
        const char *name;
        const void *value;
        size_t size;
        rd.header_get_all(hdrs, j, &name, &value, &size);
        PyObject *pair = value != NULL
                             ? Py_BuildValue("(sy#)", name, (const char *)value, (Py_ssize_t)size)
                             : Py_BuildValue("(sO)", name, Py_None);
        if (pair == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)j, pair);
    }
    return list;
}

/*
 * fetch(max_records, timeout_ms) -> None when nothing arrived within timeout_ms (which bounds
 * the wait for the first record only), else a tuple:
 *   (count, topics, topic_index int32, partitions int32, offsets int64, timestamps int64,
 *    key offsets, key data, key validity or None, key nulls,
 *    value offsets, value data, value validity or None, value nulls,
 *    headers [(row, [(name, value), ...]), ...], errors [(topic, partition, offset, code, text)])
 * Rows are the records in the order librdkafka delivered them; errors (a partition's end,
 * -191, among them) are not rows.
 */
static PyObject *Fetcher_fetch(Fetcher *f, PyObject *args) {
    Py_ssize_t max_records;
    int timeout_ms;
    if (!PyArg_ParseTuple(args, "ni", &max_records, &timeout_ms) || !Fetcher_open(f) ||
        !Fetcher_idle(f))
        return NULL;
    if (max_records < 1)
        max_records = 1;
    if (!grow(f, (size_t)max_records))
        return NULL;
    ssize_t got;
    f->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    got = rd.consume_batch_queue(f->queue, timeout_ms, f->msgs, 1);
    if (got == 1 && max_records > 1) {
        ssize_t more = rd.consume_batch_queue(f->queue, 0, f->msgs + 1, (size_t)max_records - 1);
        if (more > 0)
            got += more;
    }
    Py_END_ALLOW_THREADS
    f->busy = 0;
    if (got < 0) {
        PyErr_SetString(PyExc_RuntimeError, "librdkafka could not consume from its queue");
        return NULL;
    }
    if (got == 0)
        Py_RETURN_NONE;

    rd_kafka_message_t **all = f->msgs;
    PyObject *result = NULL, *topics = NULL, *errors = NULL, *headers = NULL;
    PyObject *topic_index = NULL, *partitions = NULL, *offsets = NULL, *stamps = NULL;
    Column key = {0}, value = {0};
    rd_kafka_topic_t **seen = NULL;
    Py_ssize_t nseen = 0;
    int failed = 0;

    topics = PyList_New(0);
    errors = PyList_New(0);
    headers = PyList_New(0);
    failed = topics == NULL || errors == NULL || headers == NULL;

    /* errors out (every one destroyed, whatever happens); rows packed to the front */
    Py_ssize_t n = 0;
    for (ssize_t i = 0; i < got; i++) {
        rd_kafka_message_t *m = all[i];
        if (m->err == ERR_NO_ERROR) {
            all[n++] = m;
            continue;
        }
        if (!failed) {
            /* an error message's payload is its text */
            const char *text = m->payload != NULL ? (const char *)m->payload : rd.err2str(m->err);
            Py_ssize_t len = m->payload != NULL ? (Py_ssize_t)m->len : (Py_ssize_t)strlen(text);
            PyObject *e = Py_BuildValue("(sinis#)",
                                        m->rkt != NULL ? rd.topic_name(m->rkt) : "",
                                        (int)m->partition, (Py_ssize_t)m->offset, m->err, text,
                                        len);
            failed = e == NULL || PyList_Append(errors, e) < 0;
            Py_XDECREF(e);
        }
        rd.message_destroy(m);
    }
    got = n; /* what is left to destroy */
    if (failed)
        goto done;

    seen = PyMem_Malloc(sizeof(*seen) * (size_t)(n > 0 ? n : 1));
    topic_index = PyBytes_FromStringAndSize(NULL, n * sizeof(int32_t));
    partitions = PyBytes_FromStringAndSize(NULL, n * sizeof(int32_t));
    offsets = PyBytes_FromStringAndSize(NULL, n * sizeof(int64_t));
    stamps = PyBytes_FromStringAndSize(NULL, n * sizeof(int64_t));
    if (seen == NULL || topic_index == NULL || partitions == NULL || offsets == NULL ||
        stamps == NULL) {
        if (seen == NULL)
            PyErr_NoMemory();
        goto done;
    }
    int32_t *ti = (int32_t *)PyBytes_AS_STRING(topic_index);
    int32_t *pt = (int32_t *)PyBytes_AS_STRING(partitions);
    int64_t *of = (int64_t *)PyBytes_AS_STRING(offsets);
    int64_t *ts = (int64_t *)PyBytes_AS_STRING(stamps);
    rd_kafka_topic_t *last = NULL;
    int32_t last_index = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        rd_kafka_message_t *m = all[i];
        if (m->rkt != last) {
            last_index = -1;
            for (Py_ssize_t s = 0; s < nseen; s++)
                if (seen[s] == m->rkt)
                    last_index = (int32_t)s;
            if (last_index < 0) {
                PyObject *name = PyUnicode_FromString(rd.topic_name(m->rkt));
                if (name == NULL || PyList_Append(topics, name) < 0) {
                    Py_XDECREF(name);
                    goto done;
                }
                Py_DECREF(name);
                seen[nseen] = m->rkt;
                last_index = (int32_t)nseen++;
            }
            last = m->rkt;
        }
        ti[i] = last_index;
        pt[i] = m->partition;
        of[i] = m->offset;
        int tstype;
        ts[i] = rd.message_timestamp(m, &tstype);
        PyObject *h = headers_of(m);
        if (h != NULL) {
            PyObject *row = Py_BuildValue("(nN)", i, h);
            if (row == NULL || PyList_Append(headers, row) < 0) {
                Py_XDECREF(row);
                goto done;
            }
            Py_DECREF(row);
        } else if (PyErr_Occurred()) {
            goto done;
        }
    }
    if (!column_make(&key, all, n, 1) || !column_make(&value, all, n, 0))
        goto done;
    result = Py_BuildValue("(nOOOOOOOOnOOOnOO)", n, topics, topic_index, partitions, offsets,
                           stamps, key.offsets, key.data, key.valid, key.nulls, value.offsets,
                           value.data, value.valid, value.nulls, headers, errors);
done:
    for (ssize_t i = 0; i < got; i++)
        rd.message_destroy(all[i]);
    PyMem_Free(seen);
    Py_XDECREF(topics);
    Py_XDECREF(errors);
    Py_XDECREF(headers);
    Py_XDECREF(topic_index);
    Py_XDECREF(partitions);
    Py_XDECREF(offsets);
    Py_XDECREF(stamps);
    Py_XDECREF(key.offsets);
    Py_XDECREF(key.data);
    Py_XDECREF(key.valid);
    Py_XDECREF(value.offsets);
    Py_XDECREF(value.data);
    Py_XDECREF(value.valid);
    return result;
}

static PyObject *Fetcher_close(Fetcher *f, PyObject *ignored) {
    if (!Fetcher_idle(f))
        return NULL;
    Fetcher_release(f);
    Py_RETURN_NONE;
}

static PyMethodDef Fetcher_methods[] = {
    {"forward", (PyCFunction)Fetcher_forward, METH_VARARGS,
     "forward(topic, partition): the partition's records come here (call before assigning)"},
    {"fetch", (PyCFunction)Fetcher_fetch, METH_VARARGS,
     "fetch(max_records, timeout_ms): the records there, as buffers (see the module)"},
    {"close", (PyCFunction)Fetcher_close, METH_NOARGS, "destroy the queue"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FetcherType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "hispeed.log._rdbulk.Fetcher",
    .tp_basicsize = sizeof(Fetcher),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)Fetcher_traverse,
    .tp_clear = (inquiry)Fetcher_clear,
    .tp_doc = "Fetcher(consumer): records of a confluent_kafka.Consumer's partitions, in bulk",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Fetcher_init,
    .tp_dealloc = (destructor)Fetcher_dealloc,
    .tp_methods = Fetcher_methods,
};

/* One binary Arrow array's parts: validity bitmap (or none), int32 offsets, data, offset. */
typedef struct {
    Py_buffer valid, offsets, data;
    int has_valid;
    Py_ssize_t offset;
} Binary;

static int binary_get(PyObject *parts, Binary *b, Py_ssize_t n) {
    PyObject *valid, *offsets, *data;
    if (!PyArg_ParseTuple(parts, "OOOn", &valid, &offsets, &data, &b->offset))
        return 0;
    if (b->offset < 0) {
        PyErr_SetString(PyExc_ValueError, "a negative array offset");
        return 0;
    }
    if (valid != Py_None) {
        if (PyObject_GetBuffer(valid, &b->valid, PyBUF_SIMPLE) < 0)
            return 0;
        b->has_valid = 1;
    }
    if (PyObject_GetBuffer(offsets, &b->offsets, PyBUF_SIMPLE) < 0)
        return 0;
    if (PyObject_GetBuffer(data, &b->data, PyBUF_SIMPLE) < 0)
        return 0;
    /* every row's bytes within the buffers */
    Py_ssize_t end = b->offset + n;
    const int32_t *o = b->offsets.buf;
    if (b->offsets.len < (end + 1) * (Py_ssize_t)sizeof(int32_t) ||
        (b->has_valid && b->valid.len < (end + 7) / 8) || o[b->offset] < 0 ||
        o[end] > b->data.len) {
        PyErr_SetString(PyExc_ValueError, "an array's buffers are shorter than its rows");
        return 0;
    }
    for (Py_ssize_t j = b->offset; j < end; j++)
        if (o[j + 1] < o[j]) {
            PyErr_SetString(PyExc_ValueError, "an array's offsets go down");
            return 0;
        }
    return 1;
}

static void binary_release(Binary *b) {
    if (b->has_valid)
        PyBuffer_Release(&b->valid);
    if (b->offsets.obj != NULL)
        PyBuffer_Release(&b->offsets);
    if (b->data.obj != NULL)
        PyBuffer_Release(&b->data);
}

/* row i's bytes (NULL for a null) and their length */
static const char *binary_at(const Binary *b, Py_ssize_t i, size_t *len) {
    Py_ssize_t j = b->offset + i;
    if (b->has_valid && !(((const uint8_t *)b->valid.buf)[j >> 3] & (1u << (j & 7)))) {
        *len = 0;
        return NULL;
    }
    const int32_t *offsets = b->offsets.buf;
    *len = (size_t)(offsets[j + 1] - offsets[j]);
    return (const char *)b->data.buf + offsets[j];
}

/*
 * produce(producer, topic, partitions, skip, keys, values, timestamps, start) -> next row
 *
 * Hands rows start.. of a batch to a confluent_kafka.Producer's librdkafka (copied), in order,
 * each to its partition (int32 buffer) with its timestamp (int64 buffer); rows whose byte in
 * `skip` (a buffer, or None) is set are left out (the caller produces them itself). keys and
 * values are (validity or None, int32 offsets, data, array offset) of Arrow binary arrays.
 * The records carry no delivery callback (their failure fails the transaction they are in).
 * Returns the row it stopped at: the batch's length, or a row the local queue had no room
 * for (the caller serves the producer's deliveries, then calls again from there).
 */
static PyObject *produce(PyObject *self, PyObject *args) {
    PyObject *producer, *skip_obj, *keys_obj, *values_obj;
    const char *topic;
    Py_buffer parts_view, stamps_view, skip_view = {0};
    Py_ssize_t start;
    if (!rd.loaded) {
        PyErr_SetString(PyExc_RuntimeError, "load() librdkafka first");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "Osy*OOOy*n", &producer, &topic, &parts_view, &skip_obj,
                          &keys_obj, &values_obj, &stamps_view, &start))
        return NULL;
    PyObject *result = NULL;
    Binary keys = {0}, values = {0};
    rd_kafka_topic_t *rkt = NULL;
    Py_ssize_t n = parts_view.len / (Py_ssize_t)sizeof(int32_t);
    if (stamps_view.len != n * (Py_ssize_t)sizeof(int64_t)) {
        PyErr_SetString(PyExc_ValueError, "a timestamp per partition, please");
        goto out;
    }
    if (skip_obj != Py_None) {
        if (PyObject_GetBuffer(skip_obj, &skip_view, PyBUF_SIMPLE) < 0)
            goto out;
        if (skip_view.len != n) {
            PyErr_SetString(PyExc_ValueError, "a skip byte per row, please");
            goto out;
        }
    }
    if (start < 0 || start > n) {
        PyErr_SetString(PyExc_ValueError, "start is not a row of the batch");
        goto out;
    }
    if (!binary_get(keys_obj, &keys, n) || !binary_get(values_obj, &values, n))
        goto out;
    rd_kafka_t *rk = *(rd_kafka_t **)((char *)producer + sizeof(PyObject));
    if (rk == NULL || rd.type(rk) != RD_KAFKA_PRODUCER) {
        PyErr_SetString(PyExc_TypeError, "not an open confluent_kafka.Producer");
        goto out;
    }
    rkt = rd.topic_new(rk, topic, NULL);
    if (rkt == NULL) {
        PyErr_Format(PyExc_RuntimeError, "librdkafka has no handle for topic %s", topic);
        goto out;
    }
    const int32_t *partitions = parts_view.buf;
    const int64_t *stamps = stamps_view.buf;
    const uint8_t *skip = skip_view.buf;
    int err = ERR_NO_ERROR;
    Py_ssize_t i = start;
    Py_BEGIN_ALLOW_THREADS
    for (; i < n; i++) {
        if (skip != NULL && skip[i])
            continue;
        size_t key_len, value_len;
        const char *key = binary_at(&keys, i, &key_len);
        const char *value = binary_at(&values, i, &value_len);
        err = rd.producev(rk, V_RKT, rkt, V_PARTITION, partitions[i], V_MSGFLAGS, MSG_F_COPY,
                          V_VALUE, (void *)value, value_len, V_KEY, (void *)key, key_len,
                          V_TIMESTAMP, stamps[i], V_END);
        if (err != ERR_NO_ERROR)
            break;
    }
    Py_END_ALLOW_THREADS
    if (err != ERR_NO_ERROR && err != ERR_QUEUE_FULL) {
        PyErr_Format(PyExc_RuntimeError, "Kafka refused a record: %s", rd.err2str(err));
        goto out;
    }
    result = PyLong_FromSsize_t(i);
out:
    if (rkt != NULL)
        rd.topic_destroy(rkt);
    binary_release(&keys);
    binary_release(&values);
    if (skip_view.obj != NULL)
        PyBuffer_Release(&skip_view);
    PyBuffer_Release(&parts_view);
    PyBuffer_Release(&stamps_view);
    return result;
}

static PyMethodDef module_methods[] = {
    {"load", load, METH_VARARGS, "load(path): use the librdkafka loaded from path"},
    {"produce", produce, METH_VARARGS,
     "produce(producer, topic, partitions, skip, keys, values, timestamps, start): next row"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_rdbulk",
    .m_doc = "A Kafka consumer's records into Arrow buffers.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__rdbulk(void) {
    if (PyType_Ready(&FetcherType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Fetcher", (PyObject *)&FetcherType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
