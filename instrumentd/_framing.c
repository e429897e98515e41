/*
 * The port-agent packet's framing in C: a packet encoded in one call, and
 * the NTP time of its header taken from a clock in one call.
 *
 * An optional accelerator for instrumentd.packet, built when a C compiler
 * is present (setup.py marks the extension optional).  A port agent frames
 * every read of its instrument; in Python that is a struct, two checksum
 * calls, slices and joins, and the float arithmetic of the NTP time, about
 * a fifth of the agent's instructions a relayed message.
 *
 * Only the plain case is done here, byte for byte as the Python functions
 * of instrumentd.packet do it (the tests compare the two on the same
 * input, at the limits): a payload of type bytes within one packet, the
 * type 0-255, the fraction 0 to 2**32 - 1, a finite float time within
 * 2**53 s.  For anything else encode_packet returns None and ntp_of the
 * Python function's result, so that errors and rounding stay Python's.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "_xorfold.h"

#define HEADER_SIZE 16
#define MAX_PACKET_SIZE 0xFFFF
#define MAX_PAYLOAD_SIZE (MAX_PACKET_SIZE - HEADER_SIZE)
/* Seconds from the NTP epoch (1900) to the Unix epoch (1970). */
#define NTP_UNIX_OFFSET 2208988800LL
#define ERA 4294967296.0
/* Floats of this size or more are not all whole numbers' neighbours. */
#define EXACT_LIMIT 9007199254740992.0

static void
put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* The packet of one payload: header with checksum, then the payload. */
static PyObject *
build(unsigned char type, const char *payload, Py_ssize_t n, uint32_t seconds,
      uint32_t fraction)
{
    PyObject *out = PyBytes_FromStringAndSize(NULL, HEADER_SIZE + n);
    unsigned char *p;
    Py_ssize_t length = HEADER_SIZE + n;

    if (out == NULL)
        return NULL;
    p = (unsigned char *)PyBytes_AS_STRING(out);
    p[0] = 0xa3;
    p[1] = 0x9d;
    p[2] = 0x7a;
    p[3] = type;
    p[4] = (unsigned char)(length >> 8);
    p[5] = (unsigned char)length;
    p[6] = 0;
    p[7] = 0;
    put32(p + 8, seconds);
    put32(p + 12, fraction);
    memcpy(p + HEADER_SIZE, payload, (size_t)n);
    /* The checksum field is zero while the packet is folded. */
    p[7] = xor_fold(p, length);
    return out;
}

/* An int argument as an unsigned value, if it is an int within limit. */
static int
small_int(PyObject *arg, unsigned long long limit, unsigned long long *value)
{
    int overflow = 0;
    long long v;

    if (!PyLong_Check(arg))
        return 0;
    v = PyLong_AsLongLongAndOverflow(arg, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    if (v < 0 || (unsigned long long)v > limit)
        return 0;
    *value = (unsigned long long)v;
    return 1;
}

static PyObject *
encode_packet(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    unsigned long long type, fraction, seconds;
    PyObject *payload;

    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "encode_packet takes 4 arguments");
        return NULL;
    }
    payload = args[1];
    if (!PyBytes_CheckExact(payload) ||
        PyBytes_GET_SIZE(payload) > MAX_PAYLOAD_SIZE ||
        !small_int(args[0], 255, &type) ||
        !small_int(args[3], 0xFFFFFFFFULL, &fraction) || !PyLong_Check(args[2]))
        Py_RETURN_NONE;
    /* seconds % 2**32: the low 32 bits of any int, negative ones too. */
    seconds = PyLong_AsUnsignedLongLongMask(args[2]);
    if (seconds == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    return build((unsigned char)type, PyBytes_AS_STRING(payload),
                 PyBytes_GET_SIZE(payload), (uint32_t)(seconds & 0xFFFFFFFFULL),
                 (uint32_t)fraction);
}

/*
 * Unix time as NTP seconds and fraction, as instrumentd.packet.unix_to_ntp
 * computes it: whole = t // 1 (floor, exact below 2**53), the fraction
 * (t - whole) * 2**32 truncated (both steps exact in binary), a fraction
 * rounded up to 2**32 carried into the seconds, the seconds modulo 2**32.
 */
static int
ntp_parts(double t, uint32_t *seconds, uint32_t *fraction)
{
    double whole, part;
    long long w;
    unsigned long long f;

    if (!isfinite(t) || fabs(t) >= EXACT_LIMIT)
        return 0;
    whole = floor(t);
    part = (t - whole) * ERA;
    f = (unsigned long long)part;
    w = (long long)whole;
    if (f >= 4294967296ULL) {
        w += 1;
        f = 0;
    }
    *seconds = (uint32_t)((unsigned long long)(w + NTP_UNIX_OFFSET) & 0xFFFFFFFFULL);
    *fraction = (uint32_t)f;
    return 1;
}

static PyObject *
ntp_tuple(uint32_t seconds, uint32_t fraction)
{
    PyObject *s, *f, *pair;

    s = PyLong_FromUnsignedLong(seconds);
    if (s == NULL)
        return NULL;
    f = PyLong_FromUnsignedLong(fraction);
    if (f == NULL) {
        Py_DECREF(s);
        return NULL;
    }
    pair = PyTuple_New(2);
    if (pair == NULL) {
        Py_DECREF(s);
        Py_DECREF(f);
        return NULL;
    }
    PyTuple_SET_ITEM(pair, 0, s);
    PyTuple_SET_ITEM(pair, 1, f);
    return pair;
}

/* NTP of a time, or what ``fallback(time)`` says where it is not plain. */
static PyObject *
ntp_of_time(PyObject *time, PyObject *fallback)
{
    uint32_t seconds, fraction;

    if (PyFloat_CheckExact(time) &&
        ntp_parts(PyFloat_AS_DOUBLE(time), &seconds, &fraction))
        return ntp_tuple(seconds, fraction);
    return PyObject_CallOneArg(fallback, time);
}

static PyObject *
ntp_of(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "ntp_of takes 2 arguments");
        return NULL;
    }
    return ntp_of_time(args[0], args[1]);
}

/* NtpClock(seconds, fallback)(): the clock's time as NTP. */
typedef struct {
    PyObject_HEAD
    PyObject *seconds;
    PyObject *fallback;
    vectorcallfunc vectorcall;
} NtpClock;

static PyObject *
clock_call(PyObject *self, PyObject *const *args, size_t nargsf,
           PyObject *kwnames)
{
    NtpClock *clock = (NtpClock *)self;
    PyObject *now, *result;

    (void)args;
    if (PyVectorcall_NARGS(nargsf) != 0 ||
        (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_SetString(PyExc_TypeError, "an NTP clock takes no arguments");
        return NULL;
    }
    now = PyObject_CallNoArgs(clock->seconds);
    if (now == NULL)
        return NULL;
    result = ntp_of_time(now, clock->fallback);
    Py_DECREF(now);
    return result;
}

static PyObject *
clock_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"seconds", "fallback", NULL};
    PyObject *seconds, *fallback;
    NtpClock *clock;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:NtpClock", names,
                                     &seconds, &fallback))
        return NULL;
    if (!PyCallable_Check(seconds) || !PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError,
                        "NtpClock needs a seconds() callable and a fallback");
        return NULL;
    }
    clock = (NtpClock *)type->tp_alloc(type, 0);
    if (clock == NULL)
        return NULL;
    Py_INCREF(seconds);
    Py_INCREF(fallback);
    clock->seconds = seconds;
    clock->fallback = fallback;
    clock->vectorcall = clock_call;
    return (PyObject *)clock;
}

static int
clock_traverse(NtpClock *clock, visitproc visit, void *arg)
{
    Py_VISIT(clock->seconds);
    Py_VISIT(clock->fallback);
    return 0;
}

static int
clock_clear(NtpClock *clock)
{
    Py_CLEAR(clock->seconds);
    Py_CLEAR(clock->fallback);
    return 0;
}

static void
clock_dealloc(NtpClock *clock)
{
    PyObject_GC_UnTrack(clock);
    clock_clear(clock);
    Py_TYPE(clock)->tp_free((PyObject *)clock);
}

static PyTypeObject NtpClockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "instrumentd._framing.NtpClock",
    .tp_doc = "NtpClock(seconds, fallback)() -> (seconds, fraction)\n\n"
              "The time of seconds() as NTP; fallback(time) converts a time "
              "that is not a plain float.",
    .tp_basicsize = sizeof(NtpClock),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
                Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = clock_new,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(NtpClock, vectorcall),
    .tp_traverse = (traverseproc)clock_traverse,
    .tp_clear = (inquiry)clock_clear,
    .tp_dealloc = (destructor)clock_dealloc,
};

static PyMethodDef methods[] = {
    {"encode_packet", (PyCFunction)(void (*)(void))encode_packet, METH_FASTCALL,
     "encode_packet(packet_type, payload, seconds, fraction) -> bytes | None\n\n"
     "One packet, as instrumentd.packet.encode_packet makes it; None where "
     "the arguments are not the plain case."},
    {"ntp_of", (PyCFunction)(void (*)(void))ntp_of, METH_FASTCALL,
     "ntp_of(time, fallback) -> (seconds, fraction)\n\n"
     "A Unix time as NTP, as instrumentd.packet.unix_to_ntp converts it; "
     "fallback(time) where it is not a plain float."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "instrumentd._framing",
    "The packet's framing in C (optional; see instrumentd.packet).", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__framing(void)
{
    PyObject *m;

    if (PyType_Ready(&NtpClockType) < 0)
        return NULL;
    m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&NtpClockType);
    if (PyModule_AddObject(m, "NtpClock", (PyObject *)&NtpClockType) < 0) {
        Py_DECREF(&NtpClockType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
