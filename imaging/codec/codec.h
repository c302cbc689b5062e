/* Declarations of the C side of package codec: thin wrappers over the codec
 * libraries, each reading from a memory buffer and writing into a buffer
 * the Go side allocated after checking the header. */
#ifndef ORTHOTRIAGE_CODEC_H
#define ORTHOTRIAGE_CODEC_H

#include <stddef.h>

#if defined(__has_include)
#if !__has_include(<gdcmjpeg/8/jpeglib.h>) || !__has_include(<charls/charls.h>) || !__has_include(<openjpeg.h>)
#error "orthotriage: the DICOM codec libraries are missing: run `scripts/setup.sh codecs` (Debian: libgdcm-dev libcharls-dev libopenjp2-7-dev), or build with -tags nocodecs (compressed pixel data is then refused)"
#endif
#endif

typedef struct {
	int width, height, components, precision;
	int is_signed;  /* samples are two's complement */
	int planar;     /* samples lie plane by plane, not interleaved by pixel */
	int lossy;      /* the stream says so: DCT process, near-lossless, 9-7 wavelet */
	int ycbcr;      /* JPEG: the stream's JFIF or Adobe marker says YCbCr */
	int unsupported; /* the failure is a feature the library lacks, not corrupt data */
	char msg[256];  /* why a call failed */
} ot_info;

int ot_ijg8_header(const unsigned char *src, size_t len, ot_info *info);
int ot_ijg8_decode(const unsigned char *src, size_t len, void *dst, size_t dst_len, ot_info *info);
int ot_ijg12_header(const unsigned char *src, size_t len, ot_info *info);
int ot_ijg12_decode(const unsigned char *src, size_t len, void *dst, size_t dst_len, ot_info *info);
int ot_ijg16_header(const unsigned char *src, size_t len, ot_info *info);
int ot_ijg16_decode(const unsigned char *src, size_t len, void *dst, size_t dst_len, ot_info *info);
int ot_jls_header(const unsigned char *src, size_t len, ot_info *info);
int ot_jls_decode(const unsigned char *src, size_t len, void *dst, size_t dst_len, ot_info *info);
int ot_j2k_header(const unsigned char *src, size_t len, ot_info *info);
int ot_j2k_decode(const unsigned char *src, size_t len, void *dst, size_t dst_len, ot_info *info);

#endif
