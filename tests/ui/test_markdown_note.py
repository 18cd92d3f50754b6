"""ComfyUI's MarkdownNote shows its text rendered as markdown when not being edited (headings,
emphasis, lists, code, links); double-click edits the source. Raw HTML stays text."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.slow

SOURCE = ("# Sampler notes\n\nUse **euler** with *20* steps, see [the docs](https://docs.comfy.org).\n\n"
          "- `cfg` 7\n- seed: randomize\n\n```\nsteps = 20\n```\n<img src=x onerror=\"window.pwned=1\">")
DOC = {"version": 1, "nodes": {}, "ui": {"notes": [
    {"id": "n1", "type": "MarkdownNote", "pos": [0, 0], "size": [420, 300], "text": SOURCE},
    {"id": "n2", "type": "Note", "pos": [480, 0], "size": [300, 120], "text": "# plain note stays text"}]}}


def test_markdown_note_renders_and_edits(editor, artifacts):
    page = editor.page
    page.evaluate("([d, n]) => window.nodegraph.loadDocument(d, n)", [DOC, "notes"])
    md = page.locator("[data-testid='note-md-n1']")
    expect(md).to_be_visible()
    expect(md.locator("h1")).to_have_text("Sampler notes")
    expect(md.locator("strong")).to_have_text("euler")
    expect(md.locator("em")).to_have_text("20")
    expect(md.locator("li")).to_have_count(2)
    expect(md.locator("li code")).to_have_text("cfg")
    expect(md.locator("pre code")).to_have_text("steps = 20")
    link = md.locator("a")
    expect(link).to_have_attribute("href", "https://docs.comfy.org")
    expect(link).to_have_attribute("target", "_blank")
    # the HTML is shown as typed, never parsed
    assert md.locator("img").count() == 0
    expect(md).to_contain_text('<img src=x onerror="window.pwned=1">')
    assert page.evaluate("() => window.pwned") is None
    # a plain Note is never rendered
    expect(page.locator("[data-testid='note-n2'] textarea")).to_have_value("# plain note stays text")
    editor.screenshot(artifacts / "markdown-note-01-rendered.png")

    # double-click edits the source; leaving the textarea renders the new text
    md.dblclick()
    area = page.locator("[data-testid='note-n1'] textarea")
    expect(area).to_be_focused()
    expect(area).to_have_value(SOURCE)
    editor.screenshot(artifacts / "markdown-note-02-editing.png")
    area.fill("## Changed\n\n1. first\n2. ~~second~~")
    page.locator(".react-flow__pane").click(position={"x": 40, "y": 560})
    expect(md.locator("h2")).to_have_text("Changed")
    expect(md.locator("ol li")).to_have_count(2)
    expect(md.locator("del")).to_have_text("second")
    assert editor.workflow()["ui"]["notes"][0]["text"] == "## Changed\n\n1. first\n2. ~~second~~"
    editor.screenshot(artifacts / "markdown-note-03-edited.png")
