# bash completion for opentact (lua-opentact): its commands, each
# command's options, the values of --format and of the on|off settings,
# files after the options that name one, and CONN: the names of the
# account's connections and control apps, from 'opentact names' (names
# kept a short while, else one bounded read; never a wait that hangs the
# shell). Source this file from ~/.bashrc, or copy it to
# ~/.local/share/bash-completion/completions/opentact.
# The options per command are those of `opentact COMMAND --help` (a spec
# checks that they stay the same).

_opentact() {
  local cur prev cmd i word
  # The words as typed: bash splits them at every character of
  # COMP_WORDBREAKS, ':' among them (app:NAME, a URL's port); read again
  # from the line, split at blanks, with --opt=value as three words, as
  # the rest expects. Replies to a word with a ':' lose what bash keeps.
  local colon=
  if [ -n "${COMP_LINE-}" ]; then
    local line=${COMP_LINE:0:COMP_POINT} w
    local -a typed=() split=()
    read -ra typed <<< "$line"
    case $line in *[[:space:]]) typed+=("") ;; esac
    for w in "${typed[@]}"; do
      case $w in
        --*=*) split+=("${w%%=*}" "=" "${w#*=}") ;;
        *) split+=("$w") ;;
      esac
    done
    COMP_WORDS=("${split[@]}")
    COMP_CWORD=$((${#split[@]} - 1))
    case ${COMP_WORDS[COMP_CWORD]} in
      *:*) case $COMP_WORDBREAKS in *:*) colon=${COMP_WORDS[COMP_CWORD]%:*}: ;; esac ;;
    esac
  fi
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=
  [ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD-1]}
  # --format=<TAB>: bash splits the word at '='
  if [ "$cur" = "=" ]; then
    cur=
  elif [ "$prev" = "=" ] && [ "$COMP_CWORD" -gt 1 ]; then
    prev=${COMP_WORDS[COMP_CWORD-2]}
  fi
  COMPREPLY=()

  # the command: the first word that is no option and no option's value
  # (--url and --profile kept, for the names of that account)
  cmd=
  i=1
  local -a account=()
  while [ "$i" -lt "$COMP_CWORD" ]; do
    word=${COMP_WORDS[i]}
    case $word in
      --url|--profile)
        if [ "${COMP_WORDS[i+1]}" = "=" ]; then i=$((i + 1)); fi
        account+=("$word" "${COMP_WORDS[i+1]}")
        i=$((i + 1)) ;;
      --add-file|--remove-file|--numbers-file|--leases-file|--failed-file|--out|--journal|--routes|--format|--url|--email|--batch-size|--concurrency|--profile|--timeout|--retries|--deadline|--country-code|--autorenew|--voice|--fax|--sms|--mms|--emergency)
        # its value follows, after an '=' or not
        if [ "${COMP_WORDS[i+1]}" = "=" ]; then i=$((i + 2)); else i=$((i + 1)); fi ;;
      -*) ;;
      *) cmd=$word; break ;;
    esac
    i=$((i + 1))
  done

  case $prev in
    --add-file|--remove-file|--numbers-file|--leases-file|--failed-file|--out|--journal|--routes)
      compopt -o filenames 2> /dev/null
      local IFS=$'\n'
      COMPREPLY=($(compgen -f -- "$cur"))
      return 0 ;;
    --format)
      COMPREPLY=($(compgen -W "table json jsonl csv tsv" -- "$cur"))
      return 0 ;;
    --autorenew|--voice|--fax|--sms|--mms|--emergency)
      COMPREPLY=($(compgen -W "on off" -- "$cur"))
      return 0 ;;
    --profile)
      # the profiles 'opentact login --profile NAME' made
      local dir=${XDG_CONFIG_HOME:-$HOME/.config}/opentact/profiles
      COMPREPLY=($(compgen -W "default $(ls "$dir" 2> /dev/null)" -- "$cur"))
      return 0 ;;
    --url|--email|--batch-size|--concurrency|--timeout|--retries|--deadline|--country-code)
      return 0 ;;
  esac

  local opts
  case $cmd in
    list) opts="--format --json --all --url --profile --timeout --deadline --retries --verbose --help" ;;
    check) opts="--routes --exact --concurrency --country-code --format --json --url --profile --timeout --deadline --retries --verbose --help" ;;
    export) opts="--routes --out --concurrency --url --profile --timeout --deadline --retries --verbose --help" ;;
    connections|apps) opts="--count --concurrency --format --json --all --url --profile --timeout --deadline --retries --verbose --help" ;;
    lease) opts="--autorenew --voice --fax --sms --mms --emergency --country-code --format --json --url --profile --timeout --deadline --retries --verbose --help" ;;
    names) opts="--url --profile --timeout --deadline --verbose --help" ;;
    find) opts="--format --json --all --country-code --url --profile --timeout --deadline --retries --verbose --help" ;;
    assign) opts="--add --remove --add-file --remove-file --move --batch-size --concurrency --failed-file --skip-invalid --format --json --country-code --url --profile --timeout --deadline --retries --verbose --help" ;;
    sync) opts="--numbers-file --leases-file --all-leases --routes --exact --move --autorenew --dry-run --yes --batch-size --concurrency --failed-file --skip-invalid --format --json --all --no-color --country-code --url --profile --timeout --deadline --retries --verbose --help" ;;
    plan) opts="--numbers-file --leases-file --all-leases --routes --exact --move --autorenew --out --concurrency --skip-invalid --all --no-color --country-code --url --profile --timeout --deadline --retries --verbose --help" ;;
    apply) opts="--journal --batch-size --concurrency --failed-file --format --json --all --no-color --url --profile --timeout --deadline --retries --verbose --help" ;;
    login) opts="--email --url --profile --timeout --deadline --retries --verbose --help" ;;
    logout) opts="--profile --verbose --help" ;;
    whoami) opts="--url --profile --format --json --verbose --help" ;;
    token) opts="--url --profile --timeout --deadline --retries --verbose --help" ;;
    help) opts="--help" ;;
    "") opts="--help --version" ;;
    *) return 0 ;;
  esac

  if [ -z "$cmd" ] && [ "${cur#-}" = "$cur" ]; then
    COMPREPLY=($(compgen -W "list find assign sync plan apply check export connections apps lease names login logout whoami token help" -- "$cur"))
  elif [ "$cmd" = help ] && [ "${cur#-}" = "$cur" ]; then
    COMPREPLY=($(compgen -W "list find assign sync plan apply check export connections apps lease names login logout whoami token" -- "$cur"))
  elif [ "$cmd" = lease ] && [ "${cur#-}" = "$cur" ] && [ "$i" -eq $((COMP_CWORD - 1)) ]; then
    COMPREPLY=($(compgen -W "set" -- "$cur"))
  elif [ "${cur#-}" != "$cur" ]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  elif [ "$i" -eq $((COMP_CWORD - 1)) ] && case $cmd in list|assign|sync|plan) true ;; *) false ;; esac; then
    # CONN: the names of the account's connections, app:NAME for its apps
    # (read line by line: a name is never split or globbed)
    local name runner=
    command -v timeout > /dev/null 2>&1 && runner="timeout 5"
    while IFS= read -r name; do
      case $name in
        "$cur"*) name=${name#"$colon"}; COMPREPLY+=("$(printf '%q' "$name")") ;;
      esac
    done < <($runner opentact names "${account[@]}" 2> /dev/null)
  elif [ "$cmd" = apply ]; then
    # the plan file
    compopt -o filenames 2> /dev/null
    local IFS=$'\n'
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
  return 0
}

complete -F _opentact opentact
