"""Figures about a session, with no session inside: rolling rates and network
figures (``rates``), the connection-quality verdict (``quality``).
"""
