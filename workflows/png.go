package workflows

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"io"
)

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// maxText bounds one decompressed text chunk: a workflow is a few MB at most.
const maxText = 32 << 20

// parsePNG reads the workflow ComfyUI stores in an image it saved: the UI
// format under "workflow" and the API format under "prompt", as tEXt chunks
// (or iTXt/zTXt, which other tools write). Both are read when both are
// there: the workflow knows where models come from, the prompt what ran.
func parsePNG(data []byte) ([]Ref, error) {
	texts, err := pngTexts(data)
	if err != nil {
		return nil, err
	}
	wf, hasWF := texts["workflow"]
	prompt, hasPrompt := texts["prompt"]
	if !hasWF && !hasPrompt {
		return nil, invalid("This PNG holds no ComfyUI workflow: it has no \"workflow\" or \"prompt\" text (only images ComfyUI saved, with metadata kept, do).")
	}
	var c collector
	for _, t := range []struct {
		text  []byte
		found bool
		what  string
	}{{wf, hasWF, "workflow"}, {prompt, hasPrompt, "prompt"}} {
		if !t.found {
			continue
		}
		body := bytes.TrimSpace(t.text)
		if len(body) == 0 || body[0] != '{' {
			return nil, invalid("The PNG's %q text is not a JSON object.", t.what)
		}
		if err := c.readJSON(body); err != nil {
			return nil, err
		}
	}
	return c.result()
}

// pngTexts returns the text chunks of a PNG by keyword.
func pngTexts(data []byte) (map[string][]byte, error) {
	out := map[string][]byte{}
	p := data[len(pngSignature):]
	for len(p) > 0 {
		if len(p) < 12 {
			return nil, invalid("The PNG is cut short.")
		}
		n := binary.BigEndian.Uint32(p[:4])
		typ := string(p[4:8])
		if uint64(n) > uint64(len(p)-12) {
			return nil, invalid("The PNG is cut short or damaged (chunk %q).", typ)
		}
		chunk := p[8 : 8+n]
		p = p[12+n:]
		switch typ {
		case "tEXt":
			if k, v, ok := bytes.Cut(chunk, []byte{0}); ok {
				out[string(k)] = latin1(v)
			}
		case "zTXt":
			k, rest, ok := bytes.Cut(chunk, []byte{0})
			if !ok || len(rest) < 1 {
				continue
			}
			v, err := inflate(rest[1:])
			if err != nil {
				return nil, invalid("The PNG's %q text could not be decompressed.", k)
			}
			out[string(k)] = latin1(v)
		case "iTXt":
			k, v, err := itxt(chunk)
			if err != nil {
				return nil, err
			}
			if k != "" {
				out[k] = v
			}
		case "IEND":
			return out, nil
		}
	}
	return out, nil
}

// itxt reads an international text chunk: keyword, compression flag and
// method, language, translated keyword, then UTF-8 text.
func itxt(chunk []byte) (string, []byte, error) {
	k, rest, ok := bytes.Cut(chunk, []byte{0})
	if !ok || len(rest) < 2 {
		return "", nil, nil
	}
	compressed := rest[0] == 1
	rest = rest[2:]
	if _, rest, ok = bytes.Cut(rest, []byte{0}); !ok { // language
		return "", nil, nil
	}
	if _, rest, ok = bytes.Cut(rest, []byte{0}); !ok { // translated keyword
		return "", nil, nil
	}
	if !compressed {
		return string(k), rest, nil
	}
	v, err := inflate(rest)
	if err != nil {
		return "", nil, invalid("The PNG's %q text could not be decompressed.", k)
	}
	return string(k), v, nil
}

func inflate(b []byte) ([]byte, error) {
	r, err := zlib.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	v, err := io.ReadAll(io.LimitReader(r, maxText+1))
	if err != nil {
		return nil, err
	}
	if len(v) > maxText {
		return nil, invalid("A text in the PNG is larger than %d MiB.", maxText>>20)
	}
	return v, nil
}

// latin1 turns tEXt's ISO 8859-1 into UTF-8. ComfyUI's JSON is ASCII there
// (Python's json.dumps escapes the rest), so this rarely changes anything.
func latin1(b []byte) []byte {
	ascii := true
	for _, c := range b {
		if c >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return b
	}
	out := make([]rune, len(b))
	for i, c := range b {
		out[i] = rune(c)
	}
	return []byte(string(out))
}
