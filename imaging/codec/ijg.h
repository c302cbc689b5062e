/* One IJG decoder, included by ijg8.c, ijg12.c and ijg16.c after the
 * matching GDCM jpeglib.h; NAME gives each copy its own symbols. */
#include <setjmp.h>
#include <string.h>

#include "codec.h"

struct NAME(err) {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
	ot_info *info;
};

static void NAME(error_exit)(j_common_ptr c) {
	struct NAME(err) *e = (struct NAME(err) *)c->err;
	char buf[JMSG_LENGTH_MAX];
	(*c->err->format_message)(c, buf);
	snprintf(e->info->msg, sizeof e->info->msg, "%s", buf);
	/* IJG 6b's messages for what it cannot do. */
	if (c->err->msg_code == JERR_BAD_PRECISION ||
	    strstr(buf, "arithmetic") != NULL || strstr(buf, "Unsupported") != NULL) {
		e->info->unsupported = 1;
	}
	longjmp(e->jump, 1);
}

/* Warnings of corrupt data (a premature end, a bad Huffman code, lost
 * sync) are errors here: IJG would go on and return wrong pixels. Others
 * (odd SOS parameters of a sequential scan, bytes before a marker, an
 * unknown JFIF revision) are harmless, and dcmtk and GDCM decode such
 * files too. */
static void NAME(emit_message)(j_common_ptr c, int level) {
	if (level >= 0) {
		return;
	}
	switch (c->err->msg_code) {
	case JWRN_HIT_MARKER:
	case JWRN_HUFF_BAD_CODE:
	case JWRN_JPEG_EOF:
	case JWRN_MUST_RESYNC:
	case JWRN_TOO_MUCH_DATA:
		NAME(error_exit)(c);
	default:
		c->err->num_warnings++;
	}
}

static void NAME(output_message)(j_common_ptr c) { (void)c; }

static void NAME(init_source)(j_decompress_ptr c) { (void)c; }

static boolean NAME(fill_input_buffer)(j_decompress_ptr c) {
	ERREXIT(c, JERR_INPUT_EOF);
	return FALSE;
}

static void NAME(skip_input_data)(j_decompress_ptr c, long n) {
	if (n <= 0) {
		return;
	}
	if ((size_t)n > c->src->bytes_in_buffer) {
		ERREXIT(c, JERR_INPUT_EOF);
	}
	c->src->next_input_byte += n;
	c->src->bytes_in_buffer -= (size_t)n;
}

static void NAME(term_source)(j_decompress_ptr c) { (void)c; }

/* NAME(run) reads the header and, when dst is not NULL, decodes into dst:
 * one sample per component, interleaved, without colour conversion. */
static int NAME(run)(const unsigned char *src, size_t len, void *dst, size_t dst_len, ot_info *info) {
	struct jpeg_decompress_struct c;
	struct NAME(err) e;
	struct jpeg_source_mgr s;
	memset(&c, 0, sizeof c);
	memset(info, 0, sizeof *info);
	c.err = jpeg_std_error(&e.pub);
	e.pub.error_exit = NAME(error_exit);
	e.pub.emit_message = NAME(emit_message);
	e.pub.output_message = NAME(output_message);
	e.info = info;
	if (setjmp(e.jump)) {
		jpeg_destroy_decompress(&c);
		return 1;
	}
	jpeg_create_decompress(&c);
	s.init_source = NAME(init_source);
	s.fill_input_buffer = NAME(fill_input_buffer);
	s.skip_input_data = NAME(skip_input_data);
	s.resync_to_restart = jpeg_resync_to_restart;
	s.term_source = NAME(term_source);
	s.next_input_byte = src;
	s.bytes_in_buffer = len;
	c.src = &s;
	jpeg_read_header(&c, TRUE);
	info->width = (int)c.image_width;
	info->height = (int)c.image_height;
	info->components = c.num_components;
	info->precision = c.data_precision;
	info->lossy = c.process != JPROC_LOSSLESS;
	info->ycbcr = c.num_components == 3 &&
		(c.saw_JFIF_marker || (c.saw_Adobe_marker && c.Adobe_transform == 1));
	if (dst == NULL) {
		jpeg_destroy_decompress(&c);
		return 0;
	}
	/* The samples as coded: no colour conversion, whatever IJG guessed. */
	c.out_color_space = c.jpeg_color_space;
	if (c.jpeg_color_space == JCS_CMYK || c.jpeg_color_space == JCS_YCCK) {
		snprintf(info->msg, sizeof info->msg, "CMYK JPEG");
		info->unsupported = 1;
		jpeg_destroy_decompress(&c);
		return 1;
	}
	jpeg_start_decompress(&c);
	size_t row = (size_t)c.output_width * (size_t)c.output_components;
	size_t bytes = sizeof(JSAMPLE) == 1 ? 1 : 2;
	if (c.output_width != c.image_width || c.output_height != c.image_height ||
	    row * c.output_height * bytes > dst_len) {
		snprintf(info->msg, sizeof info->msg, "decoder output of %u x %u x %d does not fit the buffer",
			 c.output_width, c.output_height, c.output_components);
		jpeg_destroy_decompress(&c);
		return 1;
	}
	JSAMPARRAY line = (*c.mem->alloc_sarray)((j_common_ptr)&c, JPOOL_IMAGE, (JDIMENSION)row, 1);
	while (c.output_scanline < c.output_height) {
		size_t y = c.output_scanline;
		if (jpeg_read_scanlines(&c, line, 1) != 1) {
			snprintf(info->msg, sizeof info->msg, "no scanline %zu", y);
			jpeg_destroy_decompress(&c);
			return 1;
		}
		if (bytes == 1) {
			memcpy((unsigned char *)dst + y * row, line[0], row);
		} else {
			unsigned short *out = (unsigned short *)dst + y * row;
			for (size_t i = 0; i < row; i++) {
				out[i] = (unsigned short)GETJSAMPLE(line[0][i]);
			}
		}
	}
	jpeg_finish_decompress(&c);
	jpeg_destroy_decompress(&c);
	return 0;
}
