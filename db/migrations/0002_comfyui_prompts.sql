-- ComfyUI prompts already turned into activity, so a generation is logged once
-- even when the dashboard restarts while ComfyUI keeps its history.
CREATE TABLE IF NOT EXISTS comfyui_prompts (
    prompt_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
-- DeletePromptsBefore prunes by age.
CREATE INDEX IF NOT EXISTS idx_comfyui_prompts_updated ON comfyui_prompts(updated_at);
