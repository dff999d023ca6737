/*
 * hispeed.formats._flatjson: flat JSON objects of one layout into column buffers, in C.
 *
 * The same decoding as `_flat_json.py` (see its notes for the layout), one pass per record
 * instead of numpy passes over the whole batch: about ten times less CPU per record. The
 * caller (`decode_flat`) finds the layout from the batch's first record; this checks every
 * record against it byte for byte and cuts the values out. It accepts exactly the records the
 * numpy version accepts: no whitespace; the layout's keys in its order; integers of 1 to 16
 * digits without a leading zero (an optional minus), within int32 for an INTEGER column;
 * strings without a backslash or a control character. UTF-8 is checked by the caller (Arrow).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

enum { KIND_BIGINT = 0, KIND_INTEGER = 1, KIND_STRING = 2 };
#define MAX_DIGITS 16

typedef struct {
    const char *key; /* "NAME": */
    Py_ssize_t key_len;
    int kind;
    PyObject *values;  /* int64 or int32 values; a string column's int32 offsets */
    PyObject *text;    /* a string column's bytes */
    Py_ssize_t used;   /* bytes of text written */
} Field;

/* decode(offsets, data, keys, kinds) -> [values | (offsets, text)] per field, or None when a
 * record does not match. offsets: the n + 1 int32 record offsets into data (a buffer);
 * keys: each field's '"NAME":' as bytes; kinds: 0 BIGINT, 1 INTEGER, 2 STRING. */
static PyObject *decode(PyObject *self, PyObject *args) {
    Py_buffer off_view, data_view;
    PyObject *keys, *kinds;
    if (!PyArg_ParseTuple(args, "y*y*O!O!", &off_view, &data_view, &PyList_Type, &keys,
                          &PyList_Type, &kinds))
        return NULL;
    PyObject *result = NULL;
    Field *fields = NULL;
    Py_ssize_t nf = PyList_GET_SIZE(keys);
    Py_ssize_t n = off_view.len / (Py_ssize_t)sizeof(int32_t) - 1;
    const int32_t *offsets = off_view.buf;
    const unsigned char *data = data_view.buf;
    if (n < 1 || nf < 1 || PyList_GET_SIZE(kinds) != nf) {
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
        PyObject *key = PyList_GET_ITEM(keys, j);
        if (!PyBytes_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "keys are bytes");
            goto out;
        }
        f->key = PyBytes_AS_STRING(key);
        f->key_len = PyBytes_GET_SIZE(key);
        f->kind = (int)PyLong_AsLong(PyList_GET_ITEM(kinds, j));
        if (f->kind < KIND_BIGINT || f->kind > KIND_STRING) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "a kind is 0, 1 or 2");
            goto out;
        }
        Py_ssize_t width = f->kind == KIND_BIGINT ? 8 : 4;
        f->values = PyBytes_FromStringAndSize(NULL, (f->kind == KIND_STRING ? n + 1 : n) * width);
        if (f->values == NULL)
            goto out;
        if (f->kind == KIND_STRING) {
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
        if (end - p < 2 || *p++ != '{')
            goto mismatch;
        for (Py_ssize_t j = 0; j < nf; j++) {
            Field *f = &fields[j];
            if (end - p < f->key_len || memcmp(p, f->key, (size_t)f->key_len) != 0)
                goto mismatch;
            p += f->key_len;
            if (f->kind == KIND_STRING) {
                if (p >= end || *p++ != '"')
                    goto mismatch;
                const unsigned char *s = p;
                while (p < end && *p != '"') {
                    if (*p < 0x20 || *p == '\\')
                        goto mismatch;
                    p++;
                }
                if (p >= end)
                    goto mismatch;
                Py_ssize_t len = p - s;
                memcpy(PyBytes_AS_STRING(f->text) + f->used, s, (size_t)len);
                f->used += len;
                ((int32_t *)PyBytes_AS_STRING(f->values))[i + 1] = (int32_t)f->used;
                p++; /* the closing quote */
            } else {
                int negative = p < end && *p == '-';
                p += negative;
                const unsigned char *d = p;
                int64_t value = 0;
                while (p < end && *p >= '0' && *p <= '9') {
                    if (p - d >= MAX_DIGITS)
                        goto mismatch;
                    value = value * 10 + (*p - '0');
                    p++;
                }
                Py_ssize_t digits = p - d;
                if (digits < 1 || (digits > 1 && *d == '0'))
                    goto mismatch;
                if (negative)
                    value = -value;
                if (f->kind == KIND_INTEGER) {
                    if (value < INT32_MIN || value > INT32_MAX)
                        goto mismatch; /* ksqlDB wraps these: the general decoder does it */
                    ((int32_t *)PyBytes_AS_STRING(f->values))[i] = (int32_t)value;
                } else {
                    ((int64_t *)PyBytes_AS_STRING(f->values))[i] = value;
                }
            }
            if (p >= end || *p++ != (j == nf - 1 ? '}' : ','))
                goto mismatch;
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
        if (f->kind == KIND_STRING) {
            if (_PyBytes_Resize(&f->text, f->used) < 0) {
                Py_CLEAR(result);
                goto out;
            }
            item = PyTuple_Pack(2, f->values, f->text);
        } else {
            item = Py_NewRef(f->values);
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
     "decode(offsets, data, keys, kinds): each field's column buffers, or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_flatjson",
    .m_doc = "Flat JSON objects of one layout into column buffers.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__flatjson(void) { return PyModule_Create(&module); }
