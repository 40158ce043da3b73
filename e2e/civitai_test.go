package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const civitaiPresets = `presets:
  CIV_LORA:
    name: Civitai LoRA
    category: Image Generation
    type: image
    description: A LoRA whose creator lets only signed-in users download it.
    files:
    - path: loras/civitai-lora.safetensors
      url: https://civitai.com/api/download/models/4242?type=Model&format=SafeTensor
`

// Install on a Civitai preset that needs a login, with no Civitai token:
// the token prompt opens for Civitai; a wrong key is refused, the right one
// is checked and saved, and Save & Download completes the download. The
// key goes to Civitai only, never to the storage host, and the Settings page
// shows it masked with its user and can remove it.
func TestCivitaiInstallAsksForTokenAndDownloads(t *testing.T) {
	needBrowser(t)
	hf := newFakeHF(t)
	civ := newFakeCivitai(t)
	sum := civ.add(4242, 2<<20, true)
	d := startDashboard(t, hf, dashOptions{presets: civitaiPresets, args: []string{"--civitai-endpoint", civ.api.URL}})
	browser := newBrowser(t)
	tb := newTab(t, browser, "home")
	tb.navigate(d.url("/"))
	tb.waitLive()

	install := `li.preset[data-id="CIV_LORA"] button[data-action="install"]`
	tb.waitFor("the Civitai preset", `!!document.querySelector('`+install+`')`)
	tb.click(install)
	modal := `document.getElementById("token-modal")`
	tb.waitFor("the token modal, for Civitai", modal+`.open && `+modal+`.dataset.service === "civitai" && document.activeElement.id === "token-modal-input"`)
	got := eval[map[string]string](tb, `(() => ({
		label: document.querySelector('label[for="token-modal-input"]').textContent,
		text: document.querySelector("#token-modal .modal-text").textContent,
		link: document.getElementById("token-modal-get").href,
		name: document.getElementById("token-modal-input").name,
		type: document.getElementById("token-modal-input").type,
	}))()`)
	if got["label"] != "Civitai API key" || !strings.Contains(got["text"], "signed-in users") || !strings.Contains(got["text"], "Civitai LoRA") ||
		got["link"] != "https://civitai.com/user/account" || got["name"] != "civitai_token" || got["type"] != "password" {
		t.Fatalf("the modal for Civitai: %v", got)
	}

	// A key Civitai does not accept: Test says so, Save refuses it.
	tb.typeInto("#token-modal-input", "civNotTheRightKey000000000")
	tb.click("#token-modal-test")
	tb.waitFor("the test refusal", `document.getElementById("token-modal-msg").dataset.kind === "error" && document.getElementById("token-modal-msg").textContent.includes("Civitai does not accept")`)
	tb.click("#token-modal-save")
	tb.waitFor("save refused", `!document.getElementById("token-modal-save").hasAttribute("aria-busy") && document.getElementById("token-modal-msg").textContent.includes("Civitai does not accept") && `+modal+`.open`)

	tb.clearField("#token-modal-input")
	tb.typeInto("#token-modal-input", goodCivitaiToken)
	tb.click("#token-modal-test")
	tb.waitFor("the test result", `document.getElementById("token-modal-msg").textContent === "Valid token for carol."`)
	tb.click("#token-modal-save")
	tb.waitFor("the modal closed after saving", `!`+modal+`.open`)

	row := dlRow("CIV_LORA")
	tb.waitForWithin("the download completed", `(() => { const r = `+row+`; return r && r.dataset.status === "completed"; })()`, 30*time.Second)
	tb.waitFor("the preset installed", `document.querySelector('li.preset[data-id="CIV_LORA"]').dataset.status === "installed"`)
	raw, err := os.ReadFile(filepath.Join(d.workspace, "models", "loras", "civitai-lora.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if s := sha256.Sum256(raw); hex.EncodeToString(s[:]) != sum {
		t.Fatal("the downloaded file is not the served one")
	}
	storage, downloads := civ.seen()
	if len(storage) == 0 {
		t.Fatal("the storage host was never asked")
	}
	for _, a := range storage {
		if a != "" {
			t.Fatalf("the storage host was sent Authorization %q", a)
		}
	}
	if last := downloads[len(downloads)-1]; last != "Bearer "+goodCivitaiToken {
		t.Fatalf("the download asked Civitai with Authorization %q", last)
	}
	if strings.Contains(d.logs.String(), goodCivitaiToken) {
		t.Fatal("the key reached the log")
	}

	// Settings shows the key masked, with its user, and removes it.
	st := newTab(t, browser, "settings")
	st.navigate(d.url("/settings"))
	st.waitLive()
	state := `document.getElementById("civitai-token-state-text").textContent`
	st.waitFor("the saved key", state+`.includes("civ…cdef") && `+state+`.includes("saved in settings") && `+state+`.includes("carol") && !document.getElementById("civitai-token-remove").hidden`)
	if strings.Contains(eval[string](st, `document.body.innerText`), goodCivitaiToken) {
		t.Fatal("the full key is on the page")
	}
	st.click("#civitai-token-remove")
	st.waitFor("removed", state+`.includes("No token in use") && document.getElementById("civitai-token-remove").hidden && document.getElementById("civitai-token-msg").textContent === "Token removed."`)
	var s struct {
		Civitai struct {
			Set bool `json:"set"`
		} `json:"civitai_token"`
	}
	d.mustAPI("GET", "/api/settings", nil, http.StatusOK, &s)
	if s.Civitai.Set {
		t.Fatal("the key is still set after Remove")
	}
}
