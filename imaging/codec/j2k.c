//go:build cgo && !nocodecs

/* JPEG 2000 (Part 1 and, from OpenJPEG 2.5, High-Throughput Part 15)
 * through OpenJPEG, from a memory buffer. */
#include <stdio.h>
#include <string.h>
#include <openjpeg.h>

#include "codec.h"

typedef struct {
	const unsigned char *p;
	size_t len, pos;
} mem;

static OPJ_SIZE_T mem_read(void *buf, OPJ_SIZE_T n, void *u) {
	mem *m = u;
	if (m->pos >= m->len) {
		return (OPJ_SIZE_T)-1;
	}
	size_t k = m->len - m->pos;
	if (k > n) {
		k = n;
	}
	memcpy(buf, m->p + m->pos, k);
	m->pos += k;
	return k;
}

static OPJ_OFF_T mem_skip(OPJ_OFF_T n, void *u) {
	mem *m = u;
	if (n < 0) {
		if ((size_t)(-n) > m->pos) {
			n = -(OPJ_OFF_T)m->pos;
		}
	} else if ((size_t)n > m->len - m->pos) {
		n = (OPJ_OFF_T)(m->len - m->pos);
	}
	m->pos = (size_t)((OPJ_OFF_T)m->pos + n);
	return n;
}

static OPJ_BOOL mem_seek(OPJ_OFF_T n, void *u) {
	mem *m = u;
	if (n < 0 || (size_t)n > m->len) {
		return OPJ_FALSE;
	}
	m->pos = (size_t)n;
	return OPJ_TRUE;
}

static void on_error(const char *msg, void *u) {
	ot_info *info = u;
	if (info->msg[0] == 0) {
		snprintf(info->msg, sizeof info->msg, "%s", msg);
		size_t n = strlen(info->msg);
		while (n > 0 && (info->msg[n - 1] == '\n' || info->msg[n - 1] == ' ')) {
			info->msg[--n] = 0;
		}
	}
}

static void quiet(const char *msg, void *u) {
	(void)msg;
	(void)u;
}

static int j2k_run(const unsigned char *src, size_t len, void *dst, size_t dst_len, ot_info *info) {
	memset(info, 0, sizeof *info);
	static const unsigned char jp2[] = {0, 0, 0, 0x0C, 'j', 'P', ' ', ' '};
	OPJ_CODEC_FORMAT format = OPJ_CODEC_J2K;
	if (len >= sizeof jp2 && memcmp(src, jp2, sizeof jp2) == 0) {
		format = OPJ_CODEC_JP2;
	}
	mem m = {src, len, 0};
	opj_codec_t *codec = opj_create_decompress(format);
	opj_stream_t *stream = opj_stream_create(64 << 10, OPJ_TRUE);
	opj_image_t *image = NULL;
	int rc = 1;
	if (codec == NULL || stream == NULL) {
		snprintf(info->msg, sizeof info->msg, "OpenJPEG: no decoder");
		goto done;
	}
	opj_set_error_handler(codec, on_error, info);
	opj_set_warning_handler(codec, quiet, NULL);
	opj_set_info_handler(codec, quiet, NULL);
	opj_stream_set_user_data(stream, &m, NULL);
	opj_stream_set_user_data_length(stream, len);
	opj_stream_set_read_function(stream, mem_read);
	opj_stream_set_skip_function(stream, mem_skip);
	opj_stream_set_seek_function(stream, mem_seek);
	opj_dparameters_t params;
	opj_set_default_decoder_parameters(&params);
	if (!opj_setup_decoder(codec, &params) || !opj_read_header(stream, codec, &image) || image == NULL) {
		on_error("cannot read the JPEG 2000 header", info);
		goto done;
	}
	if (image->numcomps == 0) {
		on_error("no components", info);
		goto done;
	}
	info->width = (int)image->comps[0].w;
	info->height = (int)image->comps[0].h;
	info->components = (int)image->numcomps;
	info->precision = (int)image->comps[0].prec;
	info->is_signed = (int)image->comps[0].sgnd;
	if (info->width == 0) { /* the header gives the grid, the components are sized on decoding */
		info->width = (int)(image->x1 - image->x0);
		info->height = (int)(image->y1 - image->y0);
	}
	for (OPJ_UINT32 c = 1; c < image->numcomps; c++) {
		if (image->comps[c].dx != image->comps[0].dx || image->comps[c].dy != image->comps[0].dy ||
		    image->comps[c].prec != image->comps[0].prec || image->comps[c].sgnd != image->comps[0].sgnd) {
			snprintf(info->msg, sizeof info->msg, "components of different sizes or depths");
			info->unsupported = 1;
			goto done;
		}
	}
	if (image->comps[0].dx != 1 || image->comps[0].dy != 1) {
		snprintf(info->msg, sizeof info->msg, "subsampled components");
		info->unsupported = 1;
		goto done;
	}
	opj_codestream_info_v2_t *cs = opj_get_cstr_info(codec);
	if (cs != NULL) {
		if (cs->m_default_tile_info.tccp_info != NULL) {
			info->lossy = cs->m_default_tile_info.tccp_info[0].qmfbid == 0;
		}
		opj_destroy_cstr_info(&cs);
	}
	if (dst == NULL) {
		rc = 0;
		goto done;
	}
	if (!opj_decode(codec, stream, image) || !opj_end_decompress(codec, stream)) {
		on_error("cannot decode the JPEG 2000 code stream", info);
		goto done;
	}
	size_t w = image->comps[0].w, h = image->comps[0].h, n = image->numcomps;
	size_t bytes = image->comps[0].prec <= 8 ? 1 : 2;
	if ((int)w != info->width || (int)h != info->height || w * h * n * bytes > dst_len) {
		snprintf(info->msg, sizeof info->msg, "decoder output of %zu x %zu x %zu does not fit the buffer", w, h, n);
		goto done;
	}
	for (size_t c = 0; c < n; c++) {
		if (image->comps[c].data == NULL || image->comps[c].w != w || image->comps[c].h != h) {
			snprintf(info->msg, sizeof info->msg, "component %zu not decoded", c);
			goto done;
		}
		const OPJ_INT32 *in = image->comps[c].data;
		if (bytes == 1) {
			unsigned char *out = dst;
			for (size_t i = 0; i < w * h; i++) {
				out[i * n + c] = (unsigned char)in[i];
			}
		} else {
			unsigned short *out = dst;
			for (size_t i = 0; i < w * h; i++) {
				out[i * n + c] = (unsigned short)in[i];
			}
		}
	}
	rc = 0;
done:
	if (image != NULL) opj_image_destroy(image);
	if (stream != NULL) opj_stream_destroy(stream);
	if (codec != NULL) opj_destroy_codec(codec);
	return rc;
}

int ot_j2k_header(const unsigned char *src, size_t len, ot_info *info) { return j2k_run(src, len, NULL, 0, info); }

int ot_j2k_decode(const unsigned char *src, size_t len, void *dst, size_t dst_len, ot_info *info) {
	return j2k_run(src, len, dst, dst_len, info);
}
