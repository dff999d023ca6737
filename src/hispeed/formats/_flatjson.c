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
 * A DOUBLE column (kind 3, here only: the numpy version leaves doubles to the general
 * decoder) takes a JSON number in its strict grammar, an integer of at most 15 digits or one
 * with a fraction or an exponent of at most 64 characters, converted by Python's own
 * correctly rounded parser (PyOS_string_to_double), and finite.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

enum { KIND_BIGINT = 0, KIND_INTEGER = 1, KIND_STRING = 2, KIND_DOUBLE = 3 };
#define MAX_DIGITS 16
/* integers into a DOUBLE: at most this many digits, so the double holds them exactly */
#define MAX_EXACT_DIGITS 15
#define MAX_NUMBER 64

/* The JSON number at p (before end), strictly as RFC 8259 writes it, as a double: returns
 * the byte after it, or NULL when there is none, it is too long, or it is not finite. */
static const unsigned char *parse_double(const unsigned char *p, const unsigned char *end,
                                         double *out) {
    const unsigned char *start = p;
    if (p < end && *p == '-')
        p++;
    const unsigned char *d = p;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    Py_ssize_t digits = p - d;
    if (digits < 1 || (digits > 1 && *d == '0'))
        return NULL;
    int integral = 1;
    if (p < end && *p == '.') {
        integral = 0;
        p++;
        const unsigned char *f = p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == f)
            return NULL;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        integral = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        const unsigned char *e = p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == e)
            return NULL;
    }
    Py_ssize_t len = p - start;
    if (len > MAX_NUMBER || (integral && digits > MAX_EXACT_DIGITS))
        return NULL;
    if (integral) { /* as the general decoder: an integer (so "-0" is 0), then a double */
        int64_t whole = 0;
        for (const unsigned char *q = d; q < d + digits; q++)
            whole = whole * 10 + (*q - '0');
        *out = (double)(start[0] == '-' ? -whole : whole);
        return p;
    }
    /* Clinger's fast path: at most 15 significant digits (exact in a double) scaled by a
     * power of ten of at most 22 (exact too) is one correctly rounded IEEE operation */
    {
        const unsigned char *q = d;
        uint64_t mantissa = 0;
        int sig = 0, scale = 0, exact = 1;
        for (; q < p && *q >= '0' && *q <= '9'; q++) {
            if (sig > 0 || *q != '0')
                sig++;
            mantissa = mantissa * 10 + (uint64_t)(*q - '0');
            if (sig > MAX_EXACT_DIGITS) {
                exact = 0;
                break;
            }
        }
        if (exact && q < p && *q == '.') {
            for (q++; q < p && *q >= '0' && *q <= '9'; q++) {
                if (sig > 0 || *q != '0')
                    sig++;
                mantissa = mantissa * 10 + (uint64_t)(*q - '0');
                scale--;
                if (sig > MAX_EXACT_DIGITS) {
                    exact = 0;
                    break;
                }
            }
        }
        if (exact && q < p) { /* the exponent */
            q++;
            int sign = 1;
            if (*q == '+' || *q == '-')
                sign = *q++ == '-' ? -1 : 1;
            int e = 0;
            for (; q < p; q++) {
                e = e * 10 + (*q - '0');
                if (e > 1000)
                    break;
            }
            scale += sign * e;
        }
        static const double powers[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                        1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                        1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
        if (exact && scale >= -22 && scale <= 22) {
            double value = (double)mantissa;
            value = scale < 0 ? value / powers[-scale] : value * powers[scale];
            *out = start[0] == '-' ? -value : value;
            return p;
        }
    }
    char text[MAX_NUMBER + 1];
    memcpy(text, start, (size_t)len);
    text[len] = '\0';
    char *stop = NULL;
    double value = PyOS_string_to_double(text, &stop, NULL);
    if (value == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return NULL;
    }
    if (stop != text + len || !isfinite(value))
        return NULL;
    *out = value;
    return p;
}

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
 * keys: each field's '"NAME":' as bytes; kinds: 0 BIGINT, 1 INTEGER, 2 STRING, 3 DOUBLE. */
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
        if (f->kind < KIND_BIGINT || f->kind > KIND_DOUBLE) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "a kind is 0, 1, 2 or 3");
            goto out;
        }
        Py_ssize_t width = f->kind == KIND_BIGINT || f->kind == KIND_DOUBLE ? 8 : 4;
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
            } else if (f->kind == KIND_DOUBLE) {
                double value;
                p = parse_double(p, end, &value);
                if (p == NULL)
                    goto mismatch;
                ((double *)PyBytes_AS_STRING(f->values))[i] = value;
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

PyMODINIT_FUNC PyInit__flatjson(void) {
    PyObject *m = PyModule_Create(&module);
    /* the kinds this build decodes beyond 0 to 2 (an older build has no DOUBLE) */
    if (m != NULL && PyModule_AddIntConstant(m, "KIND_DOUBLE", KIND_DOUBLE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
