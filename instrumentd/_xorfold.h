/*
 * The XOR of every byte of a buffer, eight bytes at a time: the port-agent
 * packet checksum, shared by instrumentd._xorfold (the checksum alone) and
 * instrumentd._framing (a whole packet made in one call).
 */
#ifndef INSTRUMENTD_XORFOLD_H
#define INSTRUMENTD_XORFOLD_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

static inline unsigned char
xor_fold(const unsigned char *p, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    uint64_t wide = 0;
    unsigned char narrow = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        /* memcpy: the buffer need not be aligned. */
        memcpy(&word, p + i, sizeof word);
        wide ^= word;
    }
    for (; i < n; i++)
        narrow ^= p[i];
    /* XOR does not care where a byte sits: fold the eight lanes into one. */
    wide ^= wide >> 32;
    wide ^= wide >> 16;
    wide ^= wide >> 8;
    return (unsigned char)(narrow ^ (unsigned char)(wide & 0xff));
}

#endif
