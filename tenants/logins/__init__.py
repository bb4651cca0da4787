"""Login throttle: repeated failed logins lock the account tried, and the client address they came from,
for a window of time (LOGIN_THROTTLE_* settings), whatever login page they were sent to."""
