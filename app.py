"""Placeholder landing page; the app issue fills the pages."""

import streamlit as st

st.title("Teach a computer to recognise your pictures")
st.write("The app is being built; use the `tlcore` command meanwhile.")
