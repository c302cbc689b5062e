package app

import (
	"github.com/orthotriage/orthotriage/config"
	"github.com/orthotriage/orthotriage/imaging"
)

// RetrieverOptions maps the imaging settings onto the imaging room's
// options (the service adds its outbound transport and observer); the
// offline commands take their decoding limits from it too.
func RetrieverOptions(cfg config.Config) imaging.RetrieverOptions {
	im := cfg.Imaging
	o := imaging.RetrieverOptions{
		Limits:  imaging.Limits{MaxBytes: im.MaxInstanceBytes, MaxRows: im.MaxRows, MaxColumns: im.MaxColumns, MaxFrames: im.MaxFrames},
		Timeout: im.FetchTimeout,
		Retries: im.FetchRetries,
		// Off by default: see imaging.RetrieverOptions.Compressed.
		Compressed: im.CompressedTransfer,
	}
	if im.FetchRetries == 0 {
		o.Retries = -1 // zero configured means none; the imaging default is 2
	}
	for _, c := range im.Credentials {
		o.Credentials = append(o.Credentials, imaging.Credential{BaseURL: c.BaseURL, Token: c.Token.Reveal(), Username: c.Username, Password: c.Password.Reveal()})
	}
	return o
}
