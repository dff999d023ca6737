/*
 * hispeed.formats._flatavro: Avro records of one flat schema into column buffers, in C.
 *
 * The same decoding as `avro_columnar.decode_flat` (see its notes), one pass per record
 * instead of numpy passes over the whole batch. Every read is bounds-checked against the
 * record's end; a record that is not what the schema says (a union branch other than 0 or 1,
 * a varint longer than 10 bytes, an `int` outside 32 bits, a length past the record's end, or
 * bytes left over after the last field) makes the whole call return None, and the caller
 * reads the batch record by record with fastavro, which reports each bad record. UTF-8 is
 * checked by the caller (Arrow).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

enum { K_BOOLEAN = 0, K_INT = 1, K_LONG = 2, K_FLOAT = 3, K_DOUBLE = 4, K_BYTES = 5 };
static const Py_ssize_t WIDTH[] = {1, 4, 8, 4, 8, 4};

typedef struct {
    int kind;
    int null_branch; /* -1: not a union */
    int keep;        /* 0: read past, build nothing */
    PyObject *values;
    PyObject *valid;
    PyObject *text;
    Py_ssize_t used;
} Field;

/* A zig-zag varint at *p (before end) into *out; 0 when it runs past end or 10 bytes. */
static int varint(const unsigned char **p, const unsigned char *end, int64_t *out) {
    uint64_t value = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (*p >= end)
            return 0;
        unsigned char b = *(*p)++;
        value |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(value >> 1) ^ -(int64_t)(value & 1);
            return 1;
        }
    }
    return 0;
}

static PyObject *decode(PyObject *self, PyObject *args) {
    Py_buffer off_view, data_view;
    Py_ssize_t skip;
    PyObject *kinds, *nulls, *keeps;
    if (!PyArg_ParseTuple(args, "y*y*nO!O!O!", &off_view, &data_view, &skip, &PyList_Type,
                          &kinds, &PyList_Type, &nulls, &PyList_Type, &keeps))
        return NULL;
    PyObject *result = NULL;
    Field *fields = NULL;
    Py_ssize_t nf = PyList_GET_SIZE(kinds);
    Py_ssize_t n = off_view.len / (Py_ssize_t)sizeof(int32_t) - 1;
    const int32_t *offsets = off_view.buf;
    const unsigned char *data = data_view.buf;
    if (n < 1 || nf < 1 || PyList_GET_SIZE(nulls) != nf || PyList_GET_SIZE(keeps) != nf ||
        skip < 0) {
        PyErr_SetString(PyExc_ValueError, "decode() needs records and fields");
        goto out;
    }
    if (offsets[0] < 0 || offsets[n] > data_view.len) {
        PyErr_SetString(PyExc_ValueError, "record offsets beyond the data");
        goto out;
    }
    fields = PyMem_Calloc((size_t)nf, sizeof(Field));
    if (fields == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    Py_ssize_t total = offsets[n] - offsets[0];
    for (Py_ssize_t j = 0; j < nf; j++) {
        Field *f = &fields[j];
        f->kind = (int)PyLong_AsLong(PyList_GET_ITEM(kinds, j));
        f->null_branch = (int)PyLong_AsLong(PyList_GET_ITEM(nulls, j));
        f->keep = PyObject_IsTrue(PyList_GET_ITEM(keeps, j));
        if (PyErr_Occurred() || f->keep < 0)
            goto out;
        if (f->kind < K_BOOLEAN || f->kind > K_BYTES || f->null_branch < -1 ||
            f->null_branch > 1) {
            PyErr_SetString(PyExc_ValueError, "a kind is 0 to 5, a null branch -1, 0 or 1");
            goto out;
        }
        if (!f->keep)
            continue;
        Py_ssize_t rows = f->kind == K_BYTES ? n + 1 : n;
        f->values = PyBytes_FromStringAndSize(NULL, rows * WIDTH[f->kind]);
        f->valid = PyBytes_FromStringAndSize(NULL, n);
        if (f->values == NULL || f->valid == NULL)
            goto out;
        if (f->kind == K_BYTES) {
            f->text = PyBytes_FromStringAndSize(NULL, total);
            if (f->text == NULL)
                goto out;
            ((int32_t *)PyBytes_AS_STRING(f->values))[0] = 0;
        }
    }

    for (Py_ssize_t i = 0; i < n; i++) {
        if (offsets[i + 1] < offsets[i] || offsets[i + 1] > data_view.len) {
            PyErr_SetString(PyExc_ValueError, "record offsets go down or beyond the data");
            goto out;
        }
        const unsigned char *p = data + offsets[i], *end = data + offsets[i + 1];
        if (end - p < skip)
            goto mismatch;
        p += skip;
        for (Py_ssize_t j = 0; j < nf; j++) {
            Field *f = &fields[j];
            int present = 1;
            int64_t v;
            if (f->null_branch >= 0) {
                if (!varint(&p, end, &v) || (v != 0 && v != 1))
                    goto mismatch;
                present = v != f->null_branch;
            }
            char *values = f->keep ? PyBytes_AS_STRING(f->values) : NULL;
            if (f->keep)
                PyBytes_AS_STRING(f->valid)[i] = (char)present;
            switch (f->kind) {
            case K_BOOLEAN: {
                unsigned char b = 0;
                if (present) {
                    if (p >= end)
                        goto mismatch;
                    b = *p++ != 0;
                }
                if (values)
                    ((unsigned char *)values)[i] = b;
                break;
            }
            case K_INT:
            case K_LONG:
                v = 0;
                if (present && !varint(&p, end, &v))
                    goto mismatch;
                if (f->kind == K_INT) {
                    if (v < INT32_MIN || v > INT32_MAX)
                        goto mismatch;
                    if (values)
                        ((int32_t *)values)[i] = (int32_t)v;
                } else if (values) {
                    ((int64_t *)values)[i] = v;
                }
                break;
            case K_FLOAT:
            case K_DOUBLE: {
                Py_ssize_t w = WIDTH[f->kind];
                if (present) {
                    if (end - p < w)
                        goto mismatch;
                    if (values)
                        memcpy(values + i * w, p, (size_t)w); /* little-endian, as Avro's */
                    p += w;
                } else if (values) {
                    memset(values + i * w, 0, (size_t)w);
                }
                break;
            }
            default: { /* K_BYTES: string or bytes */
                int64_t len = 0;
                if (present && (!varint(&p, end, &len) || len < 0 || len > end - p))
                    goto mismatch;
                if (values) {
                    memcpy(PyBytes_AS_STRING(f->text) + f->used, p, (size_t)len);
                    f->used += (Py_ssize_t)len;
                    ((int32_t *)values)[i + 1] = (int32_t)f->used;
                }
                p += len;
            }
            }
        }
        if (p != end)
            goto mismatch;
    }

    result = PyList_New(nf);
    if (result == NULL)
        goto out;
    for (Py_ssize_t j = 0; j < nf; j++) {
        Field *f = &fields[j];
        PyObject *item;
        if (!f->keep) {
            item = Py_NewRef(Py_None);
        } else {
            if (f->kind == K_BYTES && _PyBytes_Resize(&f->text, f->used) < 0) {
                Py_CLEAR(result);
                goto out;
            }
            item = PyTuple_Pack(3, f->values, f->valid, f->text ? f->text : Py_None);
        }
        if (item == NULL) {
            Py_CLEAR(result);
            goto out;
        }
        PyList_SET_ITEM(result, j, item);
    }
    goto out;

mismatch:
    result = Py_NewRef(Py_None);
out:
    if (fields != NULL) {
        for (Py_ssize_t j = 0; j < nf; j++) {
            Py_XDECREF(fields[j].values);
            Py_XDECREF(fields[j].valid);
            Py_XDECREF(fields[j].text);
        }
        PyMem_Free(fields);
    }
    PyBuffer_Release(&off_view);
    PyBuffer_Release(&data_view);
    return result;
}

static PyMethodDef methods[] = {
    {"decode", decode, METH_VARARGS,
     "decode(offsets, data, skip, kinds, null_branches, keep): per field (values, valid, "
     "text) or None, or None for the whole batch"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_flatavro",
    .m_doc = "Avro records of one flat schema into column buffers.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__flatavro(void) { return PyModule_Create(&module); }
