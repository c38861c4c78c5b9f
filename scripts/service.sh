# What scripts/postgres.sh and scripts/kafka.sh share; sourced, not run. Each defines
# start, url, running and stop, then calls `serve "$@"`.

port_in_use() {
    python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $1)) != 0)"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

serve() {
    case "${1:-start}" in
        start) start ;;
        url) url ;;
        status) if running; then echo "running at $(url)"; else echo "stopped"; exit 1; fi ;;
        stop) stop ;;
        *) echo "usage: $0 start|url|status|stop" >&2; exit 2 ;;
    esac
}
