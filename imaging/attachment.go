package imaging

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"strings"

	"github.com/orthotriage/orthotriage/internal/urlx"
)

// attachment is the part of a FHIR Attachment retrieval needs.
type attachment struct {
	ContentType string `json:"contentType"`
	Data        string `json:"data"`
	URL         string `json:"url"`
}

// FromResource decodes the radiographs a Media, DocumentReference or Binary
// resource carries: attachments of type application/dicom, image/png or
// image/jpeg, given inline (base64 data) or by url (relative to the FHIR
// base, or absolute). The hook's token goes only to a url under the FHIR
// base (urlx.Under). Other content types are skipped; an error is returned
// only when nothing could be decoded. Errors never name the url.
func (r *Retriever) FromResource(ctx context.Context, raw json.RawMessage, acc Access) ([]*Image, error) {
	var res struct {
		ResourceType string          `json:"resourceType"`
		Content      json.RawMessage `json:"content"`
		ContentType  string          `json:"contentType"`
		Data         string          `json:"data"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("imaging: attachment resource is not JSON: %w", err)
	}
	var atts []attachment
	switch res.ResourceType {
	case "Binary":
		atts = []attachment{{ContentType: res.ContentType, Data: res.Data}}
	case "Media": // R4 Media.content is one Attachment
		var a attachment
		if err := json.Unmarshal(res.Content, &a); err != nil {
			return nil, fmt.Errorf("imaging: Media.content: %w", err)
		}
		atts = []attachment{a}
	case "DocumentReference":
		var content []struct {
			Attachment attachment `json:"attachment"`
		}
		if err := json.Unmarshal(res.Content, &content); err != nil {
			return nil, fmt.Errorf("imaging: DocumentReference.content: %w", err)
		}
		for _, c := range content {
			atts = append(atts, c.Attachment)
		}
	default:
		return nil, fmt.Errorf("imaging: resource type %q carries no attachments (want Media, DocumentReference or Binary)", res.ResourceType)
	}
	var images []*Image
	var errs []error
	for i, a := range atts {
		img, err := r.attachment(ctx, a, acc)
		if err != nil {
			errs = append(errs, fmt.Errorf("attachment %d: %w", i, err))
			continue
		}
		images = append(images, img)
	}
	if len(images) == 0 {
		return nil, fmt.Errorf("%w in %s: %w", ErrNoImage, res.ResourceType, errors.Join(errs...))
	}
	return images, nil
}

func (r *Retriever) attachment(ctx context.Context, a attachment, acc Access) (*Image, error) {
	mt, _, _ := mime.ParseMediaType(a.ContentType)
	switch mt {
	case "application/dicom", "image/png", "image/jpeg":
	default:
		return nil, fmt.Errorf("%w: content type %q", ErrNotImage, a.ContentType)
	}
	var data []byte
	source := "inline"
	switch {
	case a.Data != "":
		if int64(base64.StdEncoding.DecodedLen(len(a.Data))) > r.limits.MaxBytes {
			return nil, fmt.Errorf("%w: inline data over %d bytes", ErrTooLarge, r.limits.MaxBytes)
		}
		var err error
		if data, err = base64.StdEncoding.DecodeString(a.Data); err != nil {
			return nil, fmt.Errorf("%w: attachment data is not base64: %v", ErrMalformed, err)
		}
	case a.URL != "":
		target, err := resolveAttachmentURL(a.URL, acc.FHIRBase)
		if err != nil {
			return nil, err
		}
		if err := acc.permit(target); err != nil {
			return nil, err
		}
		auth := func(to string) (string, error) {
			if err := acc.permit(to); err != nil {
				return "", err
			}
			if _, under := urlx.Under(acc.FHIRBase, to); under && acc.Token != "" {
				return "Bearer " + acc.Token, nil
			}
			return "", nil
		}
		q := request{target: target, op: "attachment GET at " + urlx.Origin(target)}
		q.auth, _ = auth(target)
		ctx = context.WithValue(ctx, redirectKey{}, redirectPolicy(auth))
		body, ctype, err := r.get(ctx, q, mt+", application/fhir+json;q=0.5", r.limits.MaxBytes*2)
		if err != nil {
			return nil, err
		}
		data, source = body, target
		if rt, _, _ := mime.ParseMediaType(ctype); rt == "application/fhir+json" || rt == "application/json" {
			// A FHIR server may answer a Binary read with the resource itself.
			var bin struct{ Data string }
			if err := json.Unmarshal(body, &bin); err != nil || bin.Data == "" {
				return nil, fmt.Errorf("%w: %s returned JSON without Binary data", ErrMalformed, q.op)
			}
			if data, err = base64.StdEncoding.DecodeString(bin.Data); err != nil {
				return nil, fmt.Errorf("%w: Binary data is not base64: %v", ErrMalformed, err)
			}
		}
	default:
		return nil, fmt.Errorf("%w: attachment has neither data nor url", ErrMalformed)
	}
	img, err := r.timed(func() (*Image, error) {
		if mt == "application/dicom" {
			return Decode(data, r.limits)
		}
		return DecodeRaster(data, mt, r.limits)
	})
	if err != nil {
		return nil, err
	}
	img.Meta.Source = source
	return img, nil
}

// resolveAttachmentURL makes an attachment url absolute against the FHIR
// base; an absolute url must be http(s). A relative url must stay under the
// base (no "../"). Errors do not quote the url: it may hold ids.
func resolveAttachmentURL(ref, fhirBase string) (string, error) {
	u, err := url.Parse(ref)
	if err != nil {
		return "", fmt.Errorf("%w: attachment url does not parse", ErrMalformed)
	}
	if u.IsAbs() {
		if u.Scheme != "http" && u.Scheme != "https" {
			return "", fmt.Errorf("imaging: attachment url scheme %q not supported", u.Scheme)
		}
		return u.String(), nil
	}
	if fhirBase == "" || u.Host != "" {
		return "", errors.New("imaging: attachment url is relative and there is no FHIR server to resolve it against")
	}
	target := strings.TrimRight(fhirBase, "/") + "/" + strings.TrimLeft(ref, "/")
	if _, ok := urlx.Under(fhirBase, target); !ok {
		return "", fmt.Errorf("%w: relative attachment url leaves the FHIR base", ErrNotAllowed)
	}
	return target, nil
}
