# bash completion for ikectl, iked's control CLI.
_ikectl() {
	local cur prev words cword
	_init_completion || return
	local commands="sas list-conns list-certs stats initiate terminate rekey status reload log monitor policy peers help"
	local socket=()
	local i
	for ((i = 1; i < cword; i++)); do
		if [[ ${words[i]} == --socket && $((i + 1)) -lt $cword ]]; then
			socket=(--socket "${words[i + 1]}")
		fi
	done
	case $prev in
	--socket)
		_filedir
		return
		;;
	--protocol)
		COMPREPLY=($(compgen -W "tcp udp icmp" -- "$cur"))
		return
		;;
	--port)
		return
		;;
	--level)
		COMPREPLY=($(compgen -W "debug info warn error" -- "$cur"))
		return
		;;
	esac
	# The command: the first word that is neither an option nor a value.
	local cmd=""
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		--socket) ((i++)) ;;
		-*) ;;
		*)
			cmd=${words[i]}
			break
			;;
		esac
	done
	if [[ $cur == -* ]]; then
		local opts="--socket --json --version --help"
		[[ $cmd == peers ]] && opts+=" --protocol --port"
		[[ $cmd == log ]] && opts+=" --level"
		[[ $cmd == rekey ]] && opts+=" --child"
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
		return
	fi
	case $cmd in
	"")
		COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		;;
	initiate | terminate | list-conns | list-certs)
		# The configured connections, from the running daemon.
		local names
		names=$(ikectl "${socket[@]}" status --json 2>/dev/null | sed -n 's/^ *"name": "\(.*\)",$/\1/p')
		if [[ $cmd == terminate ]]; then
			names+=" $(ikectl "${socket[@]}" sas --json 2>/dev/null | sed -n 's/^    "id": "\(ike-[0-9]*\)",$/\1/p')"
		fi
		COMPREPLY=($(compgen -W "$names" -- "$cur"))
		;;
	rekey)
		COMPREPLY=($(compgen -W "$(ikectl "${socket[@]}" status --json 2>/dev/null | sed -n 's/^ *"name": "\(.*\)",$/\1/p') $(ikectl "${socket[@]}" sas --json 2>/dev/null | sed -n 's/^    "id": "\(ike-[0-9]*\)",$/\1/p')" -- "$cur"))
		;;
	esac
}
complete -F _ikectl ikectl
