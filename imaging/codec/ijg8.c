//go:build cgo && !nocodecs

/* IJG 6b with the lossless extension as GDCM ships it, 8-bit samples. */
#include <stdio.h>
#include <gdcmjpeg/8/jpeglib.h>
#include <gdcmjpeg/8/jerror.h>

#define NAME(x) ijg8_##x
#include "ijg.h"

int ot_ijg8_header(const unsigned char *src, size_t len, ot_info *info) {
	return NAME(run)(src, len, NULL, 0, info);
}

int ot_ijg8_decode(const unsigned char *src, size_t len, void *dst, size_t dst_len, ot_info *info) {
	return NAME(run)(src, len, dst, dst_len, info);
}
