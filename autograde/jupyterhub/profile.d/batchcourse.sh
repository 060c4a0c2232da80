# Copy to /etc/profile.d/batchcourse.sh. A terminal in JupyterHub runs a login shell, whose /etc/profile sets PATH
# again: put the Python environment of the users' servers (BATCHCOURSE_USERS_BIN, set by the hub) first again,
# so that `nbgrader`, `jupyter` and `python3` there are found.
if [ -n "${BATCHCOURSE_USERS_BIN:-}" ]; then
    case ":$PATH:" in
        *":$BATCHCOURSE_USERS_BIN:"*) ;;
        *) PATH="$BATCHCOURSE_USERS_BIN:$PATH"; export PATH ;;
    esac
fi
