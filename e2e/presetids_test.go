package e2e

import (
	"testing"
	"time"
)

// A preset whose id needs escaping in a URL installs from its card: the
// page escapes the id with encodeURIComponent, the API unescapes it.
func TestPresetIDThatNeedsEscapingInstallsFromThePage(t *testing.T) {
	needBrowser(t)
	hf := newFakeHF(t)
	hf.add("acme/open-lora", "open-lora.safetensors", 1<<20, false, 128<<10, 10*time.Millisecond)
	d := startDashboard(t, hf, dashOptions{presets: `presets:
  "MY MODEL+XL":
    name: Spaced Model
    category: Image Generation
    type: image
    files:
    - path: loras/open-lora.safetensors
      url: https://huggingface.co/acme/open-lora/resolve/main/open-lora.safetensors
      size: 1MB
`})
	tb := newTab(t, newBrowser(t), "home")
	tb.navigate(d.url("/"))
	tb.waitLive()
	card := `li.preset[data-id="MY MODEL+XL"]`
	tb.waitFor("the preset", `!!document.querySelector('`+card+` button[data-action="install"]')`)
	tb.click(card + ` button[data-action="install"]`)
	tb.waitForWithin("the preset installed", `document.querySelector('`+card+`').dataset.status === "installed"`, 20*time.Second)
}
