//go:build cgo && !nocodecs

/* JPEG-LS through CharLS's C API. */
#include <stdio.h>
#include <string.h>
#include <charls/charls.h>

#include "codec.h"

static int jls_run(const unsigned char *src, size_t len, void *dst, size_t dst_len, ot_info *info) {
	memset(info, 0, sizeof *info);
	charls_jpegls_decoder *d = charls_jpegls_decoder_create();
	if (d == NULL) {
		snprintf(info->msg, sizeof info->msg, "CharLS: no decoder");
		return 1;
	}
	charls_frame_info fi;
	charls_interleave_mode mode = CHARLS_INTERLEAVE_MODE_NONE;
	int32_t near = 0;
	size_t need = 0;
	charls_jpegls_errc rc = charls_jpegls_decoder_set_source_buffer(d, src, len);
	if (rc == CHARLS_JPEGLS_ERRC_SUCCESS) rc = charls_jpegls_decoder_read_header(d);
	if (rc == CHARLS_JPEGLS_ERRC_SUCCESS) rc = charls_jpegls_decoder_get_frame_info(d, &fi);
	if (rc == CHARLS_JPEGLS_ERRC_SUCCESS) rc = charls_jpegls_decoder_get_near_lossless(d, 0, &near);
	if (rc == CHARLS_JPEGLS_ERRC_SUCCESS) rc = charls_jpegls_decoder_get_interleave_mode(d, &mode);
	if (rc == CHARLS_JPEGLS_ERRC_SUCCESS) {
		info->width = (int)fi.width;
		info->height = (int)fi.height;
		info->components = fi.component_count;
		info->precision = fi.bits_per_sample;
		info->lossy = near > 0;
		info->planar = fi.component_count > 1 && mode == CHARLS_INTERLEAVE_MODE_NONE;
	}
	if (rc == CHARLS_JPEGLS_ERRC_SUCCESS && dst != NULL) {
		rc = charls_jpegls_decoder_get_destination_size(d, 0, &need);
		if (rc == CHARLS_JPEGLS_ERRC_SUCCESS && need > dst_len) {
			snprintf(info->msg, sizeof info->msg, "decoder output of %zu bytes does not fit the buffer of %zu", need, dst_len);
			charls_jpegls_decoder_destroy(d);
			return 1;
		}
		if (rc == CHARLS_JPEGLS_ERRC_SUCCESS) rc = charls_jpegls_decoder_decode_to_buffer(d, dst, dst_len, 0);
	}
	charls_jpegls_decoder_destroy(d);
	if (rc != CHARLS_JPEGLS_ERRC_SUCCESS) {
		snprintf(info->msg, sizeof info->msg, "%s", charls_get_error_message(rc));
		info->unsupported = rc == CHARLS_JPEGLS_ERRC_PARAMETER_VALUE_NOT_SUPPORTED ||
				    rc == CHARLS_JPEGLS_ERRC_ENCODING_NOT_SUPPORTED ||
				    rc == CHARLS_JPEGLS_ERRC_BIT_DEPTH_FOR_TRANSFORM_NOT_SUPPORTED ||
				    rc == CHARLS_JPEGLS_ERRC_COLOR_TRANSFORM_NOT_SUPPORTED;
		return 1;
	}
	return 0;
}

int ot_jls_header(const unsigned char *src, size_t len, ot_info *info) { return jls_run(src, len, NULL, 0, info); }

int ot_jls_decode(const unsigned char *src, size_t len, void *dst, size_t dst_len, ot_info *info) {
	return jls_run(src, len, dst, dst_len, info);
}
