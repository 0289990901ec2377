# bash completion for iked, the IKEv2 daemon.
_iked() {
	local cur prev words cword
	_init_completion || return
	case $prev in
	--config | -config | --check-config | -check-config)
		_filedir '@(yaml|yml)'
		return
		;;
	esac
	COMPREPLY=($(compgen -W "--config --check-config --version --help" -- "$cur"))
}
complete -F _iked iked
