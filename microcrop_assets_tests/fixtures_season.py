"""Shared by the report and season demo tests: the report's HTML as tags and text."""

from html.parser import HTMLParser


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def html_elements(text: str) -> Elements:
    elements = Elements()
    elements.feed(text)
    elements.close()
    return elements
