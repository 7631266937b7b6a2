from basefuse.cli.main import main

main()
