from hispeed.cli.main import main

main()
