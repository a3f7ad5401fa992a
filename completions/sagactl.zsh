#compdef sagactl

_sagactl_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _SAGACTL_COMPLETE=complete_zsh sagactl)
}

compdef _sagactl_completion sagactl
