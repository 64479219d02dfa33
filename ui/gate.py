"""The one sign-in gate: in classroom mode every page asks who you are before it shows anything.

Classroom mode is on when the operator has made accounts (`tlcore users add`);
without accounts the gate lets everyone through, as the app always did for one
person on their own computer.

Who is signed in is kept in this browser session (`st.session_state`), never
in the address bar. tlcore learns it through `tlcore.set_user_source`: the
Streamlit server is one process for every browser, and it runs each
session's script (and its fragments and button callbacks) in that session's
own thread, so the source asks the session of the thread that calls. That
puts every tlcore call of a page (runs, uploads, kept features, remembered
choices) in the signed-in user's own space, `$TLCORE_HOME/users/<name>/`.

Two ways in: a name and password (checked by `tlcore.sign_in`, which limits
failed tries per name, per client address and both; the address is Streamlit's
`st.context.ip_address`, None on this computer), and the school's accounts through Streamlit's own `st.login`
(OpenID Connect, set up in `.streamlit/secrets.toml`; docs/serving.md), for a
school account the operator listed with `tlcore users add NAME --email ...`.
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

import tlcore
from ui import messages

USER_KEY = "tlcore_signed_in_user"


def _session_user() -> str | None:
    """The user signed in in the browser session of the calling thread (None outside a session, or before sign-in)."""
    if get_script_run_ctx(suppress_warning=True) is None:
        return None
    try:
        return st.session_state.get(USER_KEY)
    except Exception:  # a session that is ending: nobody's
        return None


tlcore.set_user_source(_session_user)


def require_sign_in() -> str | None:
    """The gate every page (and app.py's landing page) calls first: the signed-in user, or the sign-in form and a stop.

    The form appears on the page that was asked for, so after signing in the
    same address (a bookmark, `?run=...`) opens as it would have.

    Returns:
        The user's name in classroom mode; None in personal mode (no accounts).
    """
    tlcore.set_user_source(_session_user)
    with messages.shown_errors():
        return _signed_in_or_stop()


def menu_position() -> str:
    """Where app.py puts the menu: hidden until a classroom user has signed in, else in the sidebar."""
    tlcore.set_user_source(_session_user)
    signed_in = st.session_state.get(USER_KEY) and tlcore.get_user(st.session_state[USER_KEY]) is not None
    return "sidebar" if signed_in or not tlcore.classroom_mode() else "hidden"


def _signed_in_or_stop() -> str | None:
    if not tlcore.classroom_mode():
        st.session_state.pop(USER_KEY, None)
        return None
    name = st.session_state.get(USER_KEY)
    if name and tlcore.get_user(name) is not None:
        return name
    st.session_state.pop(USER_KEY, None)  # an account removed since: sign in again
    school = _school_account()
    if school is not None:
        st.session_state[USER_KEY] = school
        return school
    sign_in()
    st.stop()


def signed_in_user() -> tlcore.User | None:
    """The signed-in user's account (None in personal mode)."""
    return tlcore.get_user(st.session_state.get(USER_KEY))


def is_teacher() -> bool:
    user = signed_in_user()
    return user is not None and user.teacher


def _school_account() -> str | None:
    """The tlcore user that the school account signed in with `st.login` maps to; stops with a message if none."""
    try:
        logged_in = bool(st.user.get("is_logged_in"))
    except Exception:
        logged_in = False
    if not logged_in:
        return None
    email = st.user.get("email")
    user = tlcore.user_for_email(email) if st.user.get("email_verified", True) is not False else None
    if user is not None:
        return user.name
    st.title("Sign in")
    st.error(f"The school account {str(email)[:100]!r} is not on this class's list. Ask your teacher to add it "
             "(`tlcore users add NAME --email ADDRESS`), or sign out and use another account.")
    if st.button("Sign out", key="signin_school_logout"):
        st.logout()
    st.stop()


def _school_provider() -> tuple[bool, str | None]:
    """Whether `.streamlit/secrets.toml` sets up a school sign-in, and the provider's name (None: the default one)."""
    try:
        auth = st.secrets.get("auth")
    except Exception:  # no secrets.toml
        return False, None
    if not auth:
        return False, None
    if "client_id" in auth:
        return True, None
    providers = [name for name, value in auth.items() if hasattr(value, "keys")]
    return bool(providers), (providers[0] if providers else None)


def sign_in() -> None:
    """The sign-in page: a name and password, and the school's sign-in where it is set up."""
    st.title("Sign in")
    st.markdown("This computer is shared by a class: sign in to see **your** pictures and trainings.")
    school, provider = _school_provider()
    if school and st.button("Sign in with your school account", key="signin_school", type="primary"):
        try:
            st.login(provider) if provider else st.login()
        except Exception as error:  # e.g. Authlib missing, or a broken [auth] section: say so, keep the password form
            messages.LOGGER.warning("school sign-in failed: %s", error)
            st.error("The school sign-in is not working on this server yet; sign in with your name and password, "
                     "or tell whoever runs it (docs/serving.md: install the oidc extra, check secrets.toml).")
    with st.form("signin_form"):
        name = st.text_input("Your name", key="signin_name", max_chars=64)
        password = st.text_input("Password", type="password", key="signin_password", max_chars=1024)
        submitted = st.form_submit_button("Sign in", type="secondary" if school else "primary", key="signin_submit")
    if submitted:
        try:
            user = tlcore.sign_in(name, password, client_address())
        except tlcore.SignInError as error:
            st.error(str(error))
            return
        st.session_state[USER_KEY] = user.name
        st.rerun()
    st.caption("Forgot your password? Your teacher can set a new one.")


def client_address() -> str | None:
    """The network address this browser connects from (None on this computer, or when Streamlit cannot tell).

    Behind a reverse proxy on this computer, the proxy must pass the client's
    address (X-Forwarded-For), or every browser looks like this computer.
    """
    try:
        address = st.context.ip_address
    except Exception:  # no session (a script run outside the server)
        return None
    return address if isinstance(address, str) and address else None  # AppTest's stand-in runtime gives a mock


def account_menu() -> None:
    """In the sidebar: who is signed in, and Sign out (app.py draws it once per run; nothing in personal mode)."""
    user = signed_in_user()
    if user is None:
        return
    with st.sidebar:
        st.caption(f"Signed in as **{user.name}**" + (" (teacher)" if user.teacher else ""))
        if st.button("Sign out", key="signout"):
            st.session_state.pop(USER_KEY, None)
            if st.user.get("is_logged_in"):
                st.logout()
            st.rerun()
