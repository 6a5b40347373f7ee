"""A person at Keycloak's login pages, played with httpx form posts: approves a device code (OAuth 2.0 device
flow) or logs in to an application that sends them to Keycloak (authorization code flow) the way a browser would,
choosing a new password when Keycloak asks for one (a one-time password)."""

from __future__ import annotations

import html
import re
import ssl
from pathlib import Path

import httpx

_FORM = re.compile(r'<form[^>]*\baction="([^"]+)"', re.S)
_HIDDEN = re.compile(r'<input[^>]*type="hidden"[^>]*>', re.S)
_NAME = re.compile(r'\bname="([^"]+)"')
_VALUE = re.compile(r'\bvalue="([^"]*)"')


def _hidden_fields(page: str) -> dict[str, str]:
    fields = {}
    for tag in _HIDDEN.findall(page):
        name, value = _NAME.search(tag), _VALUE.search(tag)
        if name:
            fields[name.group(1)] = html.unescape(value.group(1)) if value else ""
    return fields


def approve_device_code(verification_uri: str, username: str, password: str, *, ca_file: Path,
                        new_password: str | None = None, accept: bool = True) -> str:
    """Open ``verification_uri`` (the complete one, with the user code), log in, set ``new_password`` if
    Keycloak requires it, and grant (or, with ``accept=False``, refuse) the request; returns the last page."""
    with browser_trusting(ca_file) as browser:
        return _fill_forms(browser, browser.get(verification_uri), username, password, new_password, accept).text


def browser_trusting(ca_file: Path) -> httpx.Client:
    """A browser (cookies, redirects followed) that trusts the CA in ``ca_file``."""
    return httpx.Client(verify=ssl.create_default_context(cafile=str(ca_file)), follow_redirects=True, timeout=30)


def log_in(browser: httpx.Client, start_url: str, username: str, password: str, *,
           new_password: str | None = None) -> httpx.Response:
    """Open ``start_url`` of an application that sends people to Keycloak, log in there (setting ``new_password``
    if Keycloak requires it) and follow the redirects back; returns the application's page."""
    return _fill_forms(browser, browser.get(start_url), username, password, new_password, accept=True)


def _fill_forms(browser: httpx.Client, page: httpx.Response, username: str, password: str,
                new_password: str | None, accept: bool) -> httpx.Response:
    for _ in range(8):
        action = _FORM.search(page.text)
        if action is None:
            return page
        url, text, data = page.url.join(html.unescape(action.group(1))), page.text, _hidden_fields(page.text)
        if 'name="password-new"' in text:
            if new_password is None:
                raise AssertionError("Keycloak asks for a new password and none was given")
            data.update({"password-new": new_password, "password-confirm": new_password})
        elif 'name="username"' in text:
            if "Invalid username or password" in text:
                raise AssertionError(f"Keycloak refused the password of {username}")
            data.update({"username": username, "password": password})
        elif 'name="accept"' in text:
            data["accept" if accept else "cancel"] = "Yes" if accept else "No"
        elif 'name="device_user_code"' in text:
            raise AssertionError("Keycloak asks for the user code: give the complete verification URI")
        else:
            raise AssertionError(f"unexpected page at {page.url}: {re.sub(r'<[^>]+>', ' ', text)[-400:]}")
        page = browser.post(url, data=data)
    raise AssertionError(f"still on a form after 8 pages: {page.url}")
